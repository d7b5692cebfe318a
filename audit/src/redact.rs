//! What of a request and a response an audit event may record.
//!
//! Allow-lists, per operation, of the KMS JSON members (PascalCase) that CloudTrail records,
//! renamed to CloudTrail's camelCase. Everything else is dropped: plaintexts, ciphertext
//! blobs, messages, signatures, MACs, peer public keys, wrapped/imported key material, import
//! tokens, grant tokens, secret access keys, private keys, and every member this table does not
//! know. Being an allow-list is the point: a secret member added to the API later is dropped
//! by default instead of leaking by default.
//!
//! Each member also has a [`Kind`] that its value must match, so a client cannot smuggle a
//! structure through a member that should hold a string; values of the wrong shape are dropped.
//! Map keys of encryption contexts are user data and are kept verbatim (not camelCased).
//!
//! Both the AWS JSON API and gRPC fronts pass the KMS JSON shape (the gRPC front converts its
//! request to the equivalent JSON members first). Operations that CloudTrail records with
//! `"encryptionAlgorithm"` even when the caller omitted it (Decrypt) get it only if the front
//! puts the effective value into the request it passes here.

use serde_json::{Map, Value};

/// The shape a recorded member's value must have.
#[derive(Clone, Copy)]
enum Kind {
    /// A string, number or boolean.
    Scalar,
    /// An object of string values; keys kept verbatim (encryption contexts).
    StringMap,
    /// An array of scalars (`Operations`, `TagKeys`, algorithm lists).
    ScalarList,
    /// An object with its own allow-list (member names camelCased).
    Object(&'static [Member]),
    /// An array of such objects.
    ObjectList(&'static [Member]),
}

type Member = (&'static str, Kind);

use Kind::{Object, ObjectList, Scalar, ScalarList, StringMap};

const TAG: &[Member] = &[("TagKey", Scalar), ("TagValue", Scalar)];
const CONSTRAINTS: &[Member] = &[
    ("EncryptionContextSubset", StringMap),
    ("EncryptionContextEquals", StringMap),
];
const LIST: &[Member] = &[("Limit", Scalar), ("Marker", Scalar)];
const KEY_ID: &[Member] = &[("KeyId", Scalar)];

const REQ_CREATE_KEY: &[Member] = &[
    ("Policy", Scalar),
    ("Description", Scalar),
    ("KeyUsage", Scalar),
    ("KeySpec", Scalar),
    ("CustomerMasterKeySpec", Scalar),
    ("Origin", Scalar),
    ("CustomKeyStoreId", Scalar),
    ("MultiRegion", Scalar),
    ("BypassPolicyLockoutSafetyCheck", Scalar),
    ("XksKeyId", Scalar),
    ("Tags", ObjectList(TAG)),
];
const REQ_KEY_LIST: &[Member] = &[("KeyId", Scalar), ("Limit", Scalar), ("Marker", Scalar)];
const REQ_CONTEXT_ALG: &[Member] = &[
    ("KeyId", Scalar),
    ("EncryptionContext", StringMap),
    ("EncryptionAlgorithm", Scalar),
];
const REQ_RE_ENCRYPT: &[Member] = &[
    ("SourceKeyId", Scalar),
    ("DestinationKeyId", Scalar),
    ("SourceEncryptionContext", StringMap),
    ("DestinationEncryptionContext", StringMap),
    ("SourceEncryptionAlgorithm", Scalar),
    ("DestinationEncryptionAlgorithm", Scalar),
];
const REQ_DATA_KEY: &[Member] = &[
    ("KeyId", Scalar),
    ("EncryptionContext", StringMap),
    ("KeySpec", Scalar),
    ("NumberOfBytes", Scalar),
];
const REQ_DATA_KEY_PAIR: &[Member] = &[
    ("KeyId", Scalar),
    ("EncryptionContext", StringMap),
    ("KeyPairSpec", Scalar),
];
const REQ_SIGN: &[Member] = &[
    ("KeyId", Scalar),
    ("MessageType", Scalar),
    ("SigningAlgorithm", Scalar),
];
const REQ_MAC: &[Member] = &[("KeyId", Scalar), ("MacAlgorithm", Scalar)];
const REQ_DERIVE: &[Member] = &[("KeyId", Scalar), ("KeyAgreementAlgorithm", Scalar)];
const REQ_GRANT: &[Member] = &[
    ("KeyId", Scalar),
    ("GranteePrincipal", Scalar),
    ("RetiringPrincipal", Scalar),
    ("Operations", ScalarList),
    ("Constraints", Object(CONSTRAINTS)),
    ("Name", Scalar),
];
const REQ_LIST_GRANTS: &[Member] = &[
    ("KeyId", Scalar),
    ("GrantId", Scalar),
    ("GranteePrincipal", Scalar),
    ("Limit", Scalar),
    ("Marker", Scalar),
];
const REQ_GRANT_ID: &[Member] = &[("KeyId", Scalar), ("GrantId", Scalar)];
const REQ_ALIAS: &[Member] = &[("AliasName", Scalar), ("TargetKeyId", Scalar)];
const REQ_PUT_POLICY: &[Member] = &[
    ("KeyId", Scalar),
    ("PolicyName", Scalar),
    ("Policy", Scalar),
    ("BypassPolicyLockoutSafetyCheck", Scalar),
];
const REQ_IMPORT: &[Member] = &[
    ("KeyId", Scalar),
    ("ValidTo", Scalar),
    ("ExpirationModel", Scalar),
    ("ImportType", Scalar),
    ("KeyMaterialDescription", Scalar),
    ("KeyMaterialId", Scalar),
];
const REQ_REPLICATE: &[Member] = &[
    ("KeyId", Scalar),
    ("ReplicaRegion", Scalar),
    ("Policy", Scalar),
    ("Description", Scalar),
    ("BypassPolicyLockoutSafetyCheck", Scalar),
    ("Tags", ObjectList(TAG)),
];
const REQ_PRINCIPAL_ARN: &[Member] = &[("PrincipalArn", Scalar)];
const REQ_PRINCIPAL_POLICY: &[Member] = &[("PrincipalArn", Scalar), ("PolicyName", Scalar)];

/// The request allow-list of one operation (KMS and KeyraftIam); unknown operations record
/// nothing.
fn request_members(operation: &str) -> &'static [Member] {
    match operation {
        "CreateKey" => REQ_CREATE_KEY,
        "DescribeKey"
        | "EnableKey"
        | "DisableKey"
        | "CancelKeyDeletion"
        | "GetPublicKey"
        | "DisableKeyRotation"
        | "GetKeyRotationStatus"
        | "GetKeyLastUsage"
        | "RotateKeyOnDemand"
        | "DeleteImportedKeyMaterial" => &[("KeyId", Scalar), ("KeyMaterialId", Scalar)],
        "ListKeys" | "ListPrincipals" => LIST,
        "UpdateKeyDescription" => &[("KeyId", Scalar), ("Description", Scalar)],
        "ScheduleKeyDeletion" => &[("KeyId", Scalar), ("PendingWindowInDays", Scalar)],
        "CreateAlias" | "UpdateAlias" => REQ_ALIAS,
        "DeleteAlias" => &[("AliasName", Scalar)],
        "ListAliases" | "ListResourceTags" | "ListKeyPolicies" | "ListKeyRotations" => REQ_KEY_LIST,
        "TagResource" => &[("KeyId", Scalar), ("Tags", ObjectList(TAG))],
        "UntagResource" => &[("KeyId", Scalar), ("TagKeys", ScalarList)],
        "Encrypt" | "Decrypt" => REQ_CONTEXT_ALG,
        "ReEncrypt" => REQ_RE_ENCRYPT,
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => REQ_DATA_KEY,
        "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => REQ_DATA_KEY_PAIR,
        "GenerateRandom" => &[("NumberOfBytes", Scalar), ("CustomKeyStoreId", Scalar)],
        "EnableKeyRotation" => &[("KeyId", Scalar), ("RotationPeriodInDays", Scalar)],
        "Sign" | "Verify" => REQ_SIGN,
        "GenerateMac" | "VerifyMac" => REQ_MAC,
        "DeriveSharedSecret" => REQ_DERIVE,
        "GetParametersForImport" => &[
            ("KeyId", Scalar),
            ("WrappingAlgorithm", Scalar),
            ("WrappingKeySpec", Scalar),
        ],
        "ImportKeyMaterial" => REQ_IMPORT,
        "PutKeyPolicy" => REQ_PUT_POLICY,
        "GetKeyPolicy" => &[("KeyId", Scalar), ("PolicyName", Scalar)],
        "CreateGrant" => REQ_GRANT,
        "ListGrants" => REQ_LIST_GRANTS,
        "ListRetirableGrants" => &[
            ("RetiringPrincipal", Scalar),
            ("Limit", Scalar),
            ("Marker", Scalar),
        ],
        "RetireGrant" | "RevokeGrant" => REQ_GRANT_ID,
        "ReplicateKey" => REQ_REPLICATE,
        "UpdatePrimaryRegion" => &[("KeyId", Scalar), ("PrimaryRegion", Scalar)],
        // KeyraftIam.
        "CreatePrincipal" => &[("PrincipalName", Scalar), ("Service", Scalar)],
        "GetPrincipal"
        | "DeletePrincipal"
        | "CreateAccessKey"
        | "ListAccessKeys"
        | "ListPrincipalPolicies" => REQ_PRINCIPAL_ARN,
        "DeleteAccessKey" => &[("AccessKeyId", Scalar), ("PrincipalArn", Scalar)],
        "PutPrincipalPolicy" => &[
            ("PrincipalArn", Scalar),
            ("PolicyName", Scalar),
            ("PolicyDocument", Scalar),
        ],
        "GetPrincipalPolicy" | "DeletePrincipalPolicy" => REQ_PRINCIPAL_POLICY,
        "IssueClientCertificate" => &[("PrincipalArn", Scalar), ("ValidityDays", Scalar)],
        _ => &[],
    }
}

const MULTI_REGION_KEY: &[Member] = &[("Arn", Scalar), ("Region", Scalar)];
const MULTI_REGION: &[Member] = &[
    ("MultiRegionKeyType", Scalar),
    ("PrimaryKey", Object(MULTI_REGION_KEY)),
    ("ReplicaKeys", ObjectList(MULTI_REGION_KEY)),
];
const KEY_METADATA: &[Member] = &[
    ("AWSAccountId", Scalar),
    ("KeyId", Scalar),
    ("Arn", Scalar),
    ("CreationDate", Scalar),
    ("Enabled", Scalar),
    ("Description", Scalar),
    ("KeyUsage", Scalar),
    ("KeyState", Scalar),
    ("DeletionDate", Scalar),
    ("ValidTo", Scalar),
    ("Origin", Scalar),
    ("CustomKeyStoreId", Scalar),
    ("ExpirationModel", Scalar),
    ("KeyManager", Scalar),
    ("CustomerMasterKeySpec", Scalar),
    ("KeySpec", Scalar),
    ("EncryptionAlgorithms", ScalarList),
    ("SigningAlgorithms", ScalarList),
    ("KeyAgreementAlgorithms", ScalarList),
    ("MacAlgorithms", ScalarList),
    ("MultiRegion", Scalar),
    ("MultiRegionConfiguration", Object(MULTI_REGION)),
    ("PendingDeletionWindowInDays", Scalar),
    ("CurrentKeyMaterialId", Scalar),
];
const PRINCIPAL: &[Member] = &[
    ("Arn", Scalar),
    ("AccountId", Scalar),
    ("PrincipalName", Scalar),
    ("Service", Scalar),
    ("Admin", Scalar),
    ("CreationDate", Scalar),
];
// Never SecretAccessKey.
const ACCESS_KEY: &[Member] = &[
    ("AccessKeyId", Scalar),
    ("PrincipalArn", Scalar),
    ("CreationDate", Scalar),
];

/// The response allow-list of one operation. Most operations record nothing (CloudTrail
/// writes `"responseElements": null` for reads and cryptographic operations).
fn response_members(operation: &str) -> &'static [Member] {
    match operation {
        "CreateKey" => &[("KeyMetadata", Object(KEY_METADATA))],
        "ScheduleKeyDeletion" => &[
            ("KeyId", Scalar),
            ("DeletionDate", Scalar),
            ("KeyState", Scalar),
            ("PendingWindowInDays", Scalar),
        ],
        "CancelKeyDeletion" | "RotateKeyOnDemand" => KEY_ID,
        // Never GrantToken: it authorizes use of the key.
        "CreateGrant" => &[("GrantId", Scalar)],
        "GetParametersForImport" => &[("KeyId", Scalar), ("ParametersValidTo", Scalar)],
        "ImportKeyMaterial" => &[("KeyId", Scalar), ("KeyMaterialId", Scalar)],
        "ReplicateKey" => &[("ReplicaKeyMetadata", Object(KEY_METADATA))],
        "CreatePrincipal" => &[("Principal", Object(PRINCIPAL))],
        "CreateAccessKey" => &[("AccessKey", Object(ACCESS_KEY))],
        "IssueClientCertificate" => &[("PrincipalArn", Scalar), ("NotAfter", Scalar)],
        _ => &[],
    }
}

/// CloudTrail's `requestParameters` for a KMS JSON request: only the operation's allow-listed
/// members, camelCased; `null` when nothing is left (or the request is not an object).
pub fn request_parameters(operation: &str, request: &Value) -> Value {
    match filter_object(request, request_members(operation)) {
        Some(map) => Value::Object(map),
        None => Value::Null,
    }
}

/// CloudTrail's `responseElements` for a KMS JSON response: only the operation's allow-listed
/// members, camelCased; `None` (written as `null`) when nothing is left.
pub fn response_elements(operation: &str, response: &Value) -> Option<Value> {
    filter_object(response, response_members(operation)).map(Value::Object)
}

/// The allow-listed members of `value`, or `None` if it is not an object or none survive.
fn filter_object(value: &Value, members: &[Member]) -> Option<Map<String, Value>> {
    let object = value.as_object()?;
    let mut out = Map::new();
    for (name, kind) in members {
        if let Some(kept) = object.get(*name).and_then(|v| filter_value(v, *kind)) {
            out.insert(camel_case(name), kept);
        }
    }
    (!out.is_empty()).then_some(out)
}

fn filter_value(value: &Value, kind: Kind) -> Option<Value> {
    match kind {
        Kind::Scalar => is_scalar(value).then(|| value.clone()),
        Kind::StringMap => {
            let map: Map<String, Value> = value
                .as_object()?
                .iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(Value::Object(map))
        }
        Kind::ScalarList => Some(Value::Array(
            value
                .as_array()?
                .iter()
                .filter(|v| is_scalar(v))
                .cloned()
                .collect(),
        )),
        Kind::Object(members) => filter_object(value, members).map(Value::Object),
        Kind::ObjectList(members) => Some(Value::Array(
            value
                .as_array()?
                .iter()
                .filter_map(|v| filter_object(v, members).map(Value::Object))
                .collect(),
        )),
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// PascalCase -> CloudTrail's camelCase: lowercase the first letter (`KeyId` -> `keyId`,
/// `AWSAccountId` -> `aWSAccountId`, as CloudTrail spells it); an all-caps name is lowercased
/// whole (`ARN` -> `arn`).
fn camel_case(name: &str) -> String {
    if name.chars().all(|c| !c.is_lowercase()) {
        return name.to_lowercase();
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn camel_case_follows_cloudtrail_spelling() {
        assert_eq!(camel_case("KeyId"), "keyId");
        assert_eq!(camel_case("AWSAccountId"), "aWSAccountId");
        assert_eq!(camel_case("ARN"), "arn");
        assert_eq!(camel_case("EncryptionContext"), "encryptionContext");
    }
}
