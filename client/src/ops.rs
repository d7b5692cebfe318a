//! One fluent builder per operation, in the manner of `aws-sdk-kms`:
//! `client.<operation>()` returns a builder, setters fill the request, `.send().await` runs it
//! (with failover and retries) and returns the response message.
//!
//! Setter conventions (as in aws-sdk-kms): scalar setters replace; `encryption_context(k, v)`
//! adds one pair; `grant_tokens(t)`, `tags(tag)`, `tag_keys(k)` append one element; the
//! `set_*` forms replace the whole collection or optional value.

use std::collections::HashMap;

use crate::client::Client;
use crate::error::Error;
use crate::proto;

macro_rules! setter {
    (string $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field = v.into();
            self
        }
    };
    (opt_string $field:ident $set:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field = Some(v.into());
            self
        }
        #[doc = concat!("Sets or clears `", stringify!($field), "`.")]
        pub fn $set(mut self, v: Option<String>) -> Self {
            self.req.$field = v;
            self
        }
    };
    (bytes $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "` (raw bytes, not base64).")]
        pub fn $field(mut self, v: impl Into<Vec<u8>>) -> Self {
            self.req.$field = v.into();
            self
        }
    };
    (opt_i32 $field:ident $set:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: i32) -> Self {
            self.req.$field = Some(v);
            self
        }
        #[doc = concat!("Sets or clears `", stringify!($field), "`.")]
        pub fn $set(mut self, v: Option<i32>) -> Self {
            self.req.$field = v;
            self
        }
    };
    (opt_f64 $field:ident $set:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: f64) -> Self {
            self.req.$field = Some(v);
            self
        }
        #[doc = concat!("Sets or clears `", stringify!($field), "`.")]
        pub fn $set(mut self, v: Option<f64>) -> Self {
            self.req.$field = v;
            self
        }
    };
    (opt_bool $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: bool) -> Self {
            self.req.$field = Some(v);
            self
        }
    };
    (bool $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: bool) -> Self {
            self.req.$field = v;
            self
        }
    };
    (map $field:ident $set:ident) => {
        #[doc = concat!("Adds one `", stringify!($field), "` pair.")]
        pub fn $field(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
            self.req.$field.insert(k.into(), v.into());
            self
        }
        #[doc = concat!("Replaces the whole `", stringify!($field), "`.")]
        pub fn $set(mut self, v: HashMap<String, String>) -> Self {
            self.req.$field = v;
            self
        }
    };
    (list $field:ident $set:ident) => {
        #[doc = concat!("Appends one element to `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field.push(v.into());
            self
        }
        #[doc = concat!("Replaces `", stringify!($field), "`.")]
        pub fn $set(mut self, v: Vec<String>) -> Self {
            self.req.$field = v;
            self
        }
    };
    (tags $field:ident $set:ident) => {
        #[doc = concat!("Appends one tag to `", stringify!($field), "`.")]
        pub fn $field(mut self, tag: proto::Tag) -> Self {
            self.req.$field.push(tag);
            self
        }
        /// Appends one tag given as key and value.
        pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.req.$field.push(proto::Tag {
                tag_key: key.into(),
                tag_value: value.into(),
            });
            self
        }
        #[doc = concat!("Replaces `", stringify!($field), "`.")]
        pub fn $set(mut self, v: Vec<proto::Tag>) -> Self {
            self.req.$field = v;
            self
        }
    };
}

macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $method:ident => $builder:ident, $op:literal, $req:ident -> $resp:ident {
            $( $kind:ident $field:ident $($extra:ident)? ; )*
        }
    )*) => {$(
        #[doc = concat!("Builder for the `", $op, "` operation; see [`Client::",
                        stringify!($method), "`].")]
        #[must_use = "a request does nothing until `.send().await`"]
        pub struct $builder {
            client: Client,
            req: proto::$req,
        }

        // Requests may hold plaintext: Debug names the operation only.
        impl std::fmt::Debug for $builder {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($builder))
            }
        }

        impl $builder {
            $( setter!($kind $field $($extra)?); )*

            /// Replaces the whole request message.
            pub fn set_request(mut self, req: proto::$req) -> Self {
                self.req = req;
                self
            }

            /// The request as it would be sent.
            pub fn as_request(&self) -> &proto::$req {
                &self.req
            }

            #[doc = concat!("Sends the `", $op, "` request, with failover and retries.")]
            pub async fn send(self) -> Result<proto::$resp, Error> {
                self.client
                    .call($op, self.req, |mut rpc, req| async move {
                        rpc.$method(req).await
                    })
                    .await
            }
        }

        impl Client {
            $(#[$doc])*
            pub fn $method(&self) -> $builder {
                $builder {
                    client: self.clone(),
                    req: Default::default(),
                }
            }
        }
    )*};
}

operations! {
    /// Creates a KMS key (`CreateKey`).
    create_key => CreateKeyFluentBuilder, "CreateKey", CreateKeyRequest -> CreateKeyResponse {
        opt_string policy set_policy;
        string description;
        opt_string key_usage set_key_usage;
        opt_string customer_master_key_spec set_customer_master_key_spec;
        opt_string key_spec set_key_spec;
        opt_string origin set_origin;
        bool bypass_policy_lockout_safety_check;
        tags tags set_tags;
        opt_bool multi_region;
    }

    /// Describes a key by id, ARN, alias name or alias ARN (`DescribeKey`).
    describe_key => DescribeKeyFluentBuilder, "DescribeKey", DescribeKeyRequest -> DescribeKeyResponse {
        string key_id;
        list grant_tokens set_grant_tokens;
    }

    /// Lists the keys of the caller's account, one page at a time (`ListKeys`).
    list_keys => ListKeysFluentBuilder, "ListKeys", ListKeysRequest -> ListKeysResponse {
        opt_i32 limit set_limit;
        opt_string marker set_marker;
    }

    /// Enables a key (`EnableKey`).
    enable_key => EnableKeyFluentBuilder, "EnableKey", EnableKeyRequest -> EnableKeyResponse {
        string key_id;
    }

    /// Disables a key (`DisableKey`).
    disable_key => DisableKeyFluentBuilder, "DisableKey", DisableKeyRequest -> DisableKeyResponse {
        string key_id;
    }

    /// Replaces a key's description (`UpdateKeyDescription`).
    update_key_description => UpdateKeyDescriptionFluentBuilder, "UpdateKeyDescription",
        UpdateKeyDescriptionRequest -> UpdateKeyDescriptionResponse {
        string key_id;
        string description;
    }

    /// Schedules a key's deletion after a 7..=30 day window (`ScheduleKeyDeletion`).
    schedule_key_deletion => ScheduleKeyDeletionFluentBuilder, "ScheduleKeyDeletion",
        ScheduleKeyDeletionRequest -> ScheduleKeyDeletionResponse {
        string key_id;
        opt_i32 pending_window_in_days set_pending_window_in_days;
    }

    /// Cancels a scheduled deletion; the key is left Disabled (`CancelKeyDeletion`).
    cancel_key_deletion => CancelKeyDeletionFluentBuilder, "CancelKeyDeletion",
        CancelKeyDeletionRequest -> CancelKeyDeletionResponse {
        string key_id;
    }

    /// Creates an alias (`CreateAlias`).
    create_alias => CreateAliasFluentBuilder, "CreateAlias", CreateAliasRequest -> CreateAliasResponse {
        string alias_name;
        string target_key_id;
    }

    /// Points an alias at another key (`UpdateAlias`).
    update_alias => UpdateAliasFluentBuilder, "UpdateAlias", UpdateAliasRequest -> UpdateAliasResponse {
        string alias_name;
        string target_key_id;
    }

    /// Deletes an alias (`DeleteAlias`).
    delete_alias => DeleteAliasFluentBuilder, "DeleteAlias", DeleteAliasRequest -> DeleteAliasResponse {
        string alias_name;
    }

    /// Lists aliases, optionally of one key (`ListAliases`).
    list_aliases => ListAliasesFluentBuilder, "ListAliases", ListAliasesRequest -> ListAliasesResponse {
        opt_string key_id set_key_id;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
    }

    /// Adds or overwrites tags on a key (`TagResource`).
    tag_resource => TagResourceFluentBuilder, "TagResource", TagResourceRequest -> TagResourceResponse {
        string key_id;
        tags tags set_tags;
    }

    /// Removes tags from a key (`UntagResource`).
    untag_resource => UntagResourceFluentBuilder, "UntagResource", UntagResourceRequest -> UntagResourceResponse {
        string key_id;
        list tag_keys set_tag_keys;
    }

    /// Lists a key's tags (`ListResourceTags`).
    list_resource_tags => ListResourceTagsFluentBuilder, "ListResourceTags",
        ListResourceTagsRequest -> ListResourceTagsResponse {
        string key_id;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
    }

    /// Encrypts up to 4096 bytes under a key (`Encrypt`).
    encrypt => EncryptFluentBuilder, "Encrypt", EncryptRequest -> EncryptResponse {
        string key_id;
        bytes plaintext;
        map encryption_context set_encryption_context;
        list grant_tokens set_grant_tokens;
        opt_string encryption_algorithm set_encryption_algorithm;
        bool dry_run;
    }

    /// Decrypts a ciphertext blob; the key is read from the blob (`Decrypt`).
    decrypt => DecryptFluentBuilder, "Decrypt", DecryptRequest -> DecryptResponse {
        bytes ciphertext_blob;
        map encryption_context set_encryption_context;
        list grant_tokens set_grant_tokens;
        opt_string key_id set_key_id;
        opt_string encryption_algorithm set_encryption_algorithm;
        bool dry_run;
    }

    /// Decrypts and re-encrypts under another key or context, server-side (`ReEncrypt`).
    re_encrypt => ReEncryptFluentBuilder, "ReEncrypt", ReEncryptRequest -> ReEncryptResponse {
        bytes ciphertext_blob;
        map source_encryption_context set_source_encryption_context;
        opt_string source_key_id set_source_key_id;
        string destination_key_id;
        map destination_encryption_context set_destination_encryption_context;
        opt_string source_encryption_algorithm set_source_encryption_algorithm;
        opt_string destination_encryption_algorithm set_destination_encryption_algorithm;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Returns a fresh data key, in plaintext and encrypted under a KMS key (`GenerateDataKey`).
    generate_data_key => GenerateDataKeyFluentBuilder, "GenerateDataKey",
        GenerateDataKeyRequest -> GenerateDataKeyResponse {
        string key_id;
        map encryption_context set_encryption_context;
        opt_i32 number_of_bytes set_number_of_bytes;
        opt_string key_spec set_key_spec;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Returns a fresh data key encrypted under a KMS key only
    /// (`GenerateDataKeyWithoutPlaintext`).
    generate_data_key_without_plaintext => GenerateDataKeyWithoutPlaintextFluentBuilder,
        "GenerateDataKeyWithoutPlaintext",
        GenerateDataKeyWithoutPlaintextRequest -> GenerateDataKeyWithoutPlaintextResponse {
        string key_id;
        map encryption_context set_encryption_context;
        opt_i32 number_of_bytes set_number_of_bytes;
        opt_string key_spec set_key_spec;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Returns random bytes (`GenerateRandom`).
    generate_random => GenerateRandomFluentBuilder, "GenerateRandom",
        GenerateRandomRequest -> GenerateRandomResponse {
        opt_i32 number_of_bytes set_number_of_bytes;
        opt_string custom_key_store_id set_custom_key_store_id;
    }

    /// Returns the DER `SubjectPublicKeyInfo` of an asymmetric key, with its spec, usage and
    /// algorithms (`GetPublicKey`).
    get_public_key => GetPublicKeyFluentBuilder, "GetPublicKey",
        GetPublicKeyRequest -> GetPublicKeyResponse {
        string key_id;
        list grant_tokens set_grant_tokens;
    }

    /// Signs a message or digest with a `SIGN_VERIFY` key (`Sign`).
    sign => SignFluentBuilder, "Sign", SignRequest -> SignResponse {
        string key_id;
        bytes message;
        opt_string message_type set_message_type;
        list grant_tokens set_grant_tokens;
        string signing_algorithm;
        bool dry_run;
    }

    /// Verifies a signature; an invalid one is the error `KMSInvalidSignatureException`
    /// (`Verify`).
    verify => VerifyFluentBuilder, "Verify", VerifyRequest -> VerifyResponse {
        string key_id;
        bytes message;
        opt_string message_type set_message_type;
        bytes signature;
        string signing_algorithm;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Computes an HMAC with a `GENERATE_VERIFY_MAC` key (`GenerateMac`).
    generate_mac => GenerateMacFluentBuilder, "GenerateMac",
        GenerateMacRequest -> GenerateMacResponse {
        bytes message;
        string key_id;
        string mac_algorithm;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Verifies an HMAC; an invalid one is the error `KMSInvalidMacException` (`VerifyMac`).
    verify_mac => VerifyMacFluentBuilder, "VerifyMac", VerifyMacRequest -> VerifyMacResponse {
        bytes message;
        string key_id;
        string mac_algorithm;
        bytes mac;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// ECDH between a `KEY_AGREEMENT` key and a peer's DER public key
    /// (`DeriveSharedSecret`).
    derive_shared_secret => DeriveSharedSecretFluentBuilder, "DeriveSharedSecret",
        DeriveSharedSecretRequest -> DeriveSharedSecretResponse {
        string key_id;
        string key_agreement_algorithm;
        bytes public_key;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Returns a fresh key pair: the public key, the private key in plaintext and encrypted
    /// under a symmetric KMS key (`GenerateDataKeyPair`).
    generate_data_key_pair => GenerateDataKeyPairFluentBuilder, "GenerateDataKeyPair",
        GenerateDataKeyPairRequest -> GenerateDataKeyPairResponse {
        map encryption_context set_encryption_context;
        string key_id;
        string key_pair_spec;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Returns a fresh key pair without the plaintext private key
    /// (`GenerateDataKeyPairWithoutPlaintext`).
    generate_data_key_pair_without_plaintext => GenerateDataKeyPairWithoutPlaintextFluentBuilder,
        "GenerateDataKeyPairWithoutPlaintext",
        GenerateDataKeyPairWithoutPlaintextRequest -> GenerateDataKeyPairWithoutPlaintextResponse {
        map encryption_context set_encryption_context;
        string key_id;
        string key_pair_spec;
        list grant_tokens set_grant_tokens;
        bool dry_run;
    }

    /// Turns on automatic rotation, every 90..=2560 days (default 365) (`EnableKeyRotation`).
    enable_key_rotation => EnableKeyRotationFluentBuilder, "EnableKeyRotation",
        EnableKeyRotationRequest -> EnableKeyRotationResponse {
        string key_id;
        opt_i32 rotation_period_in_days set_rotation_period_in_days;
    }

    /// Turns off automatic rotation (`DisableKeyRotation`).
    disable_key_rotation => DisableKeyRotationFluentBuilder, "DisableKeyRotation",
        DisableKeyRotationRequest -> DisableKeyRotationResponse {
        string key_id;
    }

    /// Whether automatic rotation is on, its period and next date (`GetKeyRotationStatus`).
    get_key_rotation_status => GetKeyRotationStatusFluentBuilder, "GetKeyRotationStatus",
        GetKeyRotationStatusRequest -> GetKeyRotationStatusResponse {
        string key_id;
    }

    /// Replicates a multi-region primary key into another region (`ReplicateKey`); the
    /// replica is `Creating` until its material has arrived there.
    replicate_key => ReplicateKeyFluentBuilder, "ReplicateKey",
        ReplicateKeyRequest -> ReplicateKeyResponse {
        string key_id;
        string replica_region;
        opt_string policy set_policy;
        bool bypass_policy_lockout_safety_check;
        string description;
        tags tags set_tags;
    }

    /// Makes a replica region the primary of a multi-region key (`UpdatePrimaryRegion`).
    update_primary_region => UpdatePrimaryRegionFluentBuilder, "UpdatePrimaryRegion",
        UpdatePrimaryRegionRequest -> UpdatePrimaryRegionResponse {
        string key_id;
        string primary_region;
    }

    /// Starts a rotation now; it completes in the background (`RotateKeyOnDemand`).
    rotate_key_on_demand => RotateKeyOnDemandFluentBuilder, "RotateKeyOnDemand",
        RotateKeyOnDemandRequest -> RotateKeyOnDemandResponse {
        string key_id;
    }

    /// Lists a key's completed rotations, oldest first (`ListKeyRotations`).
    list_key_rotations => ListKeyRotationsFluentBuilder, "ListKeyRotations",
        ListKeyRotationsRequest -> ListKeyRotationsResponse {
        string key_id;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
        opt_string include_key_material set_include_key_material;
    }

    /// Returns an RSA wrapping public key (DER) and an import token for an `EXTERNAL` key,
    /// valid 24 hours (`GetParametersForImport`).
    get_parameters_for_import => GetParametersForImportFluentBuilder, "GetParametersForImport",
        GetParametersForImportRequest -> GetParametersForImportResponse {
        string key_id;
        string wrapping_algorithm;
        string wrapping_key_spec;
    }

    /// Imports key material wrapped with the public key from `get_parameters_for_import`
    /// (`ImportKeyMaterial`). `valid_to` is seconds since the Unix epoch.
    import_key_material => ImportKeyMaterialFluentBuilder, "ImportKeyMaterial",
        ImportKeyMaterialRequest -> ImportKeyMaterialResponse {
        string key_id;
        bytes import_token;
        bytes encrypted_key_material;
        opt_f64 valid_to set_valid_to;
        opt_string expiration_model set_expiration_model;
        opt_string import_type set_import_type;
        opt_string key_material_description set_key_material_description;
        opt_string key_material_id set_key_material_id;
    }

    /// Deletes imported key material; the key becomes `PendingImport`
    /// (`DeleteImportedKeyMaterial`).
    delete_imported_key_material => DeleteImportedKeyMaterialFluentBuilder,
        "DeleteImportedKeyMaterial",
        DeleteImportedKeyMaterialRequest -> DeleteImportedKeyMaterialResponse {
        string key_id;
    }

    /// Replaces a key's key policy (`PutKeyPolicy`). The document is validated and, unless
    /// `bypass_policy_lockout_safety_check` is set, must still allow the caller
    /// `kms:PutKeyPolicy` (else `MalformedPolicyDocumentException`).
    put_key_policy => PutKeyPolicyFluentBuilder, "PutKeyPolicy",
        PutKeyPolicyRequest -> PutKeyPolicyResponse {
        string key_id;
        opt_string policy_name set_policy_name;
        string policy;
        bool bypass_policy_lockout_safety_check;
    }

    /// Returns a key's key policy document as written (`GetKeyPolicy`).
    get_key_policy => GetKeyPolicyFluentBuilder, "GetKeyPolicy",
        GetKeyPolicyRequest -> GetKeyPolicyResponse {
        string key_id;
        opt_string policy_name set_policy_name;
    }

    /// Lists a key's key policy names: always `["default"]` (`ListKeyPolicies`).
    list_key_policies => ListKeyPoliciesFluentBuilder, "ListKeyPolicies",
        ListKeyPoliciesRequest -> ListKeyPoliciesResponse {
        string key_id;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
    }

    /// Creates a grant; the returned token works at once in `grant_tokens` (`CreateGrant`).
    /// Operations and constraints are set with the builder's `operations`, `operation` and
    /// `constraints_*` methods.
    create_grant => CreateGrantFluentBuilder, "CreateGrant", CreateGrantRequest -> CreateGrantResponse {
        string key_id;
        string grantee_principal;
        opt_string retiring_principal set_retiring_principal;
        list grant_tokens set_grant_tokens;
        opt_string name set_name;
        bool dry_run;
    }

    /// Lists a key's grants, optionally one grant or one grantee's (`ListGrants`).
    list_grants => ListGrantsFluentBuilder, "ListGrants", ListGrantsRequest -> ListGrantsResponse {
        string key_id;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
        opt_string grant_id set_grant_id;
        opt_string grantee_principal set_grantee_principal;
    }

    /// Lists the grants a principal may retire, in every key of the region
    /// (`ListRetirableGrants`).
    list_retirable_grants => ListRetirableGrantsFluentBuilder, "ListRetirableGrants",
        ListRetirableGrantsRequest -> ListGrantsResponse {
        string retiring_principal;
        opt_i32 limit set_limit;
        opt_string marker set_marker;
    }

    /// Retires a grant, by `grant_token` or by `key_id` and `grant_id` (`RetireGrant`).
    retire_grant => RetireGrantFluentBuilder, "RetireGrant", RetireGrantRequest -> RetireGrantResponse {
        opt_string grant_token set_grant_token;
        opt_string key_id set_key_id;
        opt_string grant_id set_grant_id;
        bool dry_run;
    }

    /// Revokes a grant (`RevokeGrant`).
    revoke_grant => RevokeGrantFluentBuilder, "RevokeGrant", RevokeGrantRequest -> RevokeGrantResponse {
        string key_id;
        string grant_id;
        bool dry_run;
    }

    /// When a key was last used for a successful cryptographic operation; key id or key ARN
    /// only (`GetKeyLastUsage`).
    get_key_last_usage => GetKeyLastUsageFluentBuilder, "GetKeyLastUsage",
        GetKeyLastUsageRequest -> GetKeyLastUsageResponse {
        string key_id;
    }
}

impl CreateGrantFluentBuilder {
    /// Appends operations (`"Encrypt"`, `"Decrypt"`, `"GenerateDataKey"`, ...).
    pub fn operations<I, S>(mut self, ops: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.req.operations.extend(ops.into_iter().map(Into::into));
        self
    }

    /// Appends one operation.
    pub fn operation(mut self, op: impl Into<String>) -> Self {
        self.req.operations.push(op.into());
        self
    }

    /// Replaces `operations`.
    pub fn set_operations(mut self, ops: Vec<String>) -> Self {
        self.req.operations = ops;
        self
    }

    /// Sets or clears the whole `constraints` message.
    pub fn set_constraints(mut self, c: Option<proto::GrantConstraints>) -> Self {
        self.req.constraints = c;
        self
    }

    /// Adds one pair the request's encryption context must contain
    /// (`Constraints.EncryptionContextSubset`).
    pub fn constraints_encryption_context_subset(
        mut self,
        k: impl Into<String>,
        v: impl Into<String>,
    ) -> Self {
        let c = self.req.constraints.get_or_insert_with(Default::default);
        c.encryption_context_subset.insert(k.into(), v.into());
        c.has_encryption_context_subset = true;
        self
    }

    /// Adds one pair of the exact encryption context required
    /// (`Constraints.EncryptionContextEquals`).
    pub fn constraints_encryption_context_equals(
        mut self,
        k: impl Into<String>,
        v: impl Into<String>,
    ) -> Self {
        let c = self.req.constraints.get_or_insert_with(Default::default);
        c.encryption_context_equals.insert(k.into(), v.into());
        c.has_encryption_context_equals = true;
        self
    }

    /// Sets `Constraints.EncryptionContextSubset` to exactly these pairs (present even when
    /// empty).
    pub fn set_constraints_encryption_context_subset(mut self, v: HashMap<String, String>) -> Self {
        let c = self.req.constraints.get_or_insert_with(Default::default);
        c.encryption_context_subset = v;
        c.has_encryption_context_subset = true;
        self
    }

    /// Sets `Constraints.EncryptionContextEquals` to exactly these pairs (present even when
    /// empty: then only requests without an encryption context match).
    pub fn set_constraints_encryption_context_equals(mut self, v: HashMap<String, String>) -> Self {
        let c = self.req.constraints.get_or_insert_with(Default::default);
        c.encryption_context_equals = v;
        c.has_encryption_context_equals = true;
        self
    }
}

/// Builder for `BatchEncrypt`; see [`Client::batch_encrypt`].
#[must_use = "a request does nothing until `.send().await`"]
pub struct BatchEncryptFluentBuilder {
    client: Client,
    req: proto::BatchEncryptRequest,
}

/// Builder for `BatchDecrypt`; see [`Client::batch_decrypt`].
#[must_use = "a request does nothing until `.send().await`"]
pub struct BatchDecryptFluentBuilder {
    client: Client,
    req: proto::BatchDecryptRequest,
}

impl std::fmt::Debug for BatchEncryptFluentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BatchEncryptFluentBuilder({} items)",
            self.req.items.len()
        )
    }
}

impl std::fmt::Debug for BatchDecryptFluentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BatchDecryptFluentBuilder({} items)",
            self.req.items.len()
        )
    }
}

fn item_error(e: proto::KmsError) -> Error {
    Error::Service {
        code: crate::error::code_for_error_type(&e.error_type),
        error_type: e.error_type,
        message: e.message,
    }
}

fn missing_result() -> Error {
    Error::Transport {
        code: tonic::Code::Internal,
        message: "batch result has neither a response nor an error".into(),
    }
}

impl BatchEncryptFluentBuilder {
    /// Appends one item.
    pub fn item(mut self, item: proto::EncryptRequest) -> Self {
        self.req.items.push(item);
        self
    }

    /// Appends one item from its parts.
    pub fn encrypt(
        self,
        key_id: impl Into<String>,
        plaintext: impl Into<Vec<u8>>,
        encryption_context: HashMap<String, String>,
    ) -> Self {
        self.item(proto::EncryptRequest {
            key_id: key_id.into(),
            plaintext: plaintext.into(),
            encryption_context,
            ..Default::default()
        })
    }

    /// Replaces all items.
    pub fn set_items(mut self, items: Vec<proto::EncryptRequest>) -> Self {
        self.req.items = items;
        self
    }

    /// Sends the batch. The outer error is for the batch as a whole (transport, empty or
    /// oversized batch); each item gets its own result, in request order.
    pub async fn send(self) -> Result<Vec<Result<proto::EncryptResponse, Error>>, Error> {
        let resp = self
            .client
            .call("BatchEncrypt", self.req, |mut rpc, req| async move {
                rpc.batch_encrypt(req).await
            })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(proto::batch_encrypt_result::Result::Ok(ok)) => Ok(ok),
                Some(proto::batch_encrypt_result::Result::Error(e)) => Err(item_error(e)),
                None => Err(missing_result()),
            })
            .collect())
    }
}

impl BatchDecryptFluentBuilder {
    /// Appends one item.
    pub fn item(mut self, item: proto::DecryptRequest) -> Self {
        self.req.items.push(item);
        self
    }

    /// Appends one item from its parts.
    pub fn decrypt(
        self,
        ciphertext_blob: impl Into<Vec<u8>>,
        encryption_context: HashMap<String, String>,
    ) -> Self {
        self.item(proto::DecryptRequest {
            ciphertext_blob: ciphertext_blob.into(),
            encryption_context,
            ..Default::default()
        })
    }

    /// Replaces all items.
    pub fn set_items(mut self, items: Vec<proto::DecryptRequest>) -> Self {
        self.req.items = items;
        self
    }

    /// Sends the batch. The outer error is for the batch as a whole (transport, empty or
    /// oversized batch); each item gets its own result, in request order.
    pub async fn send(self) -> Result<Vec<Result<proto::DecryptResponse, Error>>, Error> {
        let resp = self
            .client
            .call("BatchDecrypt", self.req, |mut rpc, req| async move {
                rpc.batch_decrypt(req).await
            })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(proto::batch_decrypt_result::Result::Ok(ok)) => Ok(ok),
                Some(proto::batch_decrypt_result::Result::Error(e)) => Err(item_error(e)),
                None => Err(missing_result()),
            })
            .collect())
    }
}

macro_rules! send_all {
    ($builder:ident, $item:ident, $field:ident) => {
        impl $builder {
            #[doc = concat!("Sends the request page after page (following `next_marker`) and \
                returns every `", stringify!($field), "` entry. `limit` is the page size.")]
            pub async fn send_all(mut self) -> Result<Vec<proto::$item>, Error> {
                let mut all = Vec::new();
                loop {
                    let marker = self.req.marker.clone();
                    let page = self.clone_request().send().await?;
                    all.extend(page.$field);
                    match page.next_marker.filter(|_| page.truncated) {
                        // A marker that does not move would loop forever.
                        Some(next) if Some(&next) == marker.as_ref() => {
                            return Err(Error::Transport {
                                code: tonic::Code::Internal,
                                message: "pagination returned the same marker twice".into(),
                            })
                        }
                        Some(next) => self.req.marker = Some(next),
                        None => return Ok(all),
                    }
                }
            }

            fn clone_request(&self) -> Self {
                $builder {
                    client: self.client.clone(),
                    req: self.req.clone(),
                }
            }
        }
    };
}

send_all!(ListKeysFluentBuilder, KeyListEntry, keys);
send_all!(ListAliasesFluentBuilder, AliasListEntry, aliases);
send_all!(ListResourceTagsFluentBuilder, Tag, tags);
send_all!(ListKeyRotationsFluentBuilder, RotationsListEntry, rotations);
send_all!(ListGrantsFluentBuilder, GrantListEntry, grants);
send_all!(ListRetirableGrantsFluentBuilder, GrantListEntry, grants);

impl Client {
    /// Encrypts many plaintexts in one round trip (keyraft extension `BatchEncrypt`).
    pub fn batch_encrypt(&self) -> BatchEncryptFluentBuilder {
        BatchEncryptFluentBuilder {
            client: self.clone(),
            req: Default::default(),
        }
    }

    /// Decrypts many ciphertexts in one round trip (keyraft extension `BatchDecrypt`).
    pub fn batch_decrypt(&self) -> BatchDecryptFluentBuilder {
        BatchDecryptFluentBuilder {
            client: self.clone(),
            req: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builders_fill_the_request_in_aws_sdk_style() {
        let kms = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .build()
            .unwrap();
        let b = kms
            .encrypt()
            .key_id("alias/x")
            .plaintext(b"hi".to_vec())
            .encryption_context("k", "v")
            .encryption_context("k2", "v2")
            .grant_tokens("t1");
        let r = b.as_request();
        assert_eq!(r.key_id, "alias/x");
        assert_eq!(r.plaintext, b"hi");
        assert_eq!(r.encryption_context.len(), 2);
        assert_eq!(r.grant_tokens, vec!["t1"]);
        assert!(!format!("{b:?}").contains("hi"));

        let c = kms
            .create_key()
            .description("d")
            .tag("env", "prod")
            .key_spec("SYMMETRIC_DEFAULT");
        assert_eq!(c.as_request().tags[0].tag_key, "env");
        assert_eq!(
            c.as_request().key_spec.as_deref(),
            Some("SYMMETRIC_DEFAULT")
        );

        let s = kms
            .sign()
            .key_id("alias/signer")
            .message(b"msg".to_vec())
            .message_type("RAW")
            .signing_algorithm("ECDSA_SHA_256");
        let r = s.as_request();
        assert_eq!(r.message, b"msg");
        assert_eq!(r.message_type.as_deref(), Some("RAW"));
        assert_eq!(r.signing_algorithm, "ECDSA_SHA_256");
        assert!(!format!("{s:?}").contains("msg"));
        let e = kms
            .enable_key_rotation()
            .key_id("k")
            .rotation_period_in_days(90);
        assert_eq!(e.as_request().rotation_period_in_days, Some(90));
    }

    #[tokio::test]
    async fn grant_builders_keep_operations_and_constraint_presence() {
        let kms = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .build()
            .unwrap();
        let g = kms
            .create_grant()
            .key_id("k")
            .grantee_principal("arn:aws:iam::111122223333:role/App")
            .operations(["Encrypt", "Decrypt"])
            .operation("GenerateDataKey")
            .constraints_encryption_context_subset("team", "blue")
            .name("n");
        let r = g.as_request();
        assert_eq!(r.operations, vec!["Encrypt", "Decrypt", "GenerateDataKey"]);
        let c = r.constraints.as_ref().unwrap();
        assert!(c.has_encryption_context_subset && !c.has_encryption_context_equals);
        assert_eq!(c.encryption_context_subset["team"], "blue");
        assert_eq!(r.name.as_deref(), Some("n"));
        assert_eq!(r.retiring_principal, None);
        // An empty "equals" constraint is present: it admits only requests without context.
        let e = kms
            .create_grant()
            .set_constraints_encryption_context_equals(HashMap::new());
        assert!(
            e.as_request()
                .constraints
                .as_ref()
                .unwrap()
                .has_encryption_context_equals
        );
        let t = kms.retire_grant().grant_token("t");
        assert_eq!(t.as_request().grant_token.as_deref(), Some("t"));
        assert_eq!(t.as_request().key_id, None);
        let p = kms
            .put_key_policy()
            .key_id("k")
            .policy("{}")
            .bypass_policy_lockout_safety_check(true);
        assert!(p.as_request().bypass_policy_lockout_safety_check);
        assert_eq!(p.as_request().policy_name, None);
    }
}
