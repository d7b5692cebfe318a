//! The operations this front serves: `X-Amz-Target: TrentService.<Op>` -> [`Operation`] ->
//! the IAM action it needs.

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// One AWS KMS operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // each variant is the AWS operation of the same name
        pub enum Operation { $($op),* }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$op),*];

            /// The AWS operation name (`Encrypt`).
            pub fn name(self) -> &'static str {
                match self { $(Operation::$op => stringify!($op)),* }
            }

            /// The IAM action (`kms:Encrypt`). ReEncrypt is authorized as `kms:ReEncryptFrom`
            /// on the source key and `kms:ReEncryptTo` on the destination key.
            pub fn action(self) -> &'static str {
                #[allow(unreachable_patterns)]
                match self {
                    Operation::ReEncrypt => "kms:ReEncrypt*",
                    $(Operation::$op => concat!("kms:", stringify!($op))),*
                }
            }
        }
    };
}

operations!(
    CreateKey,
    DescribeKey,
    ListKeys,
    EnableKey,
    DisableKey,
    UpdateKeyDescription,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    ListAliases,
    TagResource,
    UntagResource,
    ListResourceTags,
    Encrypt,
    Decrypt,
    ReEncrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateRandom,
    // Key rotation (front/rotation.rs).
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    RotateKeyOnDemand,
    ListKeyRotations,
    // Asymmetric, HMAC and key-agreement keys (front/asymmetric.rs).
    GetPublicKey,
    Sign,
    Verify,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    // Imported key material, BYOK (front/import.rs).
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteImportedKeyMaterial,
    PutKeyPolicy,
    GetKeyPolicy,
    ListKeyPolicies,
    CreateGrant,
    ListGrants,
    ListRetirableGrants,
    RetireGrant,
    RevokeGrant,
    // GetKeyLastUsage, from the audit trail (front/last_usage.rs).
    GetKeyLastUsage,
    // Multi-region keys (front/multi_region.rs).
    ReplicateKey,
    UpdatePrimaryRegion,
);

/// Every operation of the AWS KMS API (botocore's model), served or not. A known but
/// unserved one is `UnsupportedOperationException` rather than `UnknownOperationException`,
/// so a client learns it reached a KMS endpoint that lacks the feature.
pub const AWS_KMS_OPERATIONS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncrypt",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];

/// The target prefix of the KMS JSON protocol.
pub const TARGET_PREFIX: &str = "TrentService.";

impl Operation {
    /// Parses an `X-Amz-Target` value.
    pub fn from_target(target: &str) -> Option<Operation> {
        let name = target.strip_prefix(TARGET_PREFIX)?;
        Operation::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// For a target this front does not serve: `Some(name)` if it is a real KMS operation.
    pub fn unsupported_aws_operation(target: &str) -> Option<&str> {
        let name = target.strip_prefix(TARGET_PREFIX)?;
        AWS_KMS_OPERATIONS.contains(&name).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip() {
        for op in Operation::ALL {
            assert_eq!(
                Operation::from_target(&format!("TrentService.{}", op.name())),
                Some(*op)
            );
        }
    }

    #[test]
    fn unknown_or_unprefixed_targets_are_refused() {
        for t in [
            "",
            "TrentService.",
            "TrentService.Nope",
            "Encrypt",
            "trentservice.Encrypt",
            "TrentService.encrypt",
        ] {
            assert_eq!(Operation::from_target(t), None, "{t}");
        }
    }

    #[test]
    fn every_served_operation_is_a_real_kms_operation() {
        for op in Operation::ALL {
            assert!(AWS_KMS_OPERATIONS.contains(&op.name()), "{op:?}");
        }
        assert_eq!(
            Operation::unsupported_aws_operation("TrentService.GetKeyPolicy"),
            Some("GetKeyPolicy")
        );
        assert_eq!(
            Operation::unsupported_aws_operation("TrentService.Bogus"),
            None
        );
    }

    #[test]
    fn actions_are_kms_prefixed() {
        assert_eq!(Operation::Encrypt.action(), "kms:Encrypt");
        assert_eq!(
            Operation::GenerateDataKeyWithoutPlaintext.action(),
            "kms:GenerateDataKeyWithoutPlaintext"
        );
    }
}
