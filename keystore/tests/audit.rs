//! The audit trail's pure core, as a specification:
//!
//! - events have CloudTrail's shape and member names;
//! - redaction is an allow-list: canary secrets placed in every secret-bearing member of every
//!   operation never reach an event's bytes;
//! - the hash chain is deterministic and its hash is exactly the documented formula;
//! - digests sign a canonical encoding, chain to each other, and are bound to key validity;
//! - `verify` catches editing, deleting, reordering and inserting any single record, and
//!   truncating the log, naming a record at or before the tampered position.

use base64::Engine;
use keystore::audit::{
    format_event_time, parse_jsonl, read_only, record_hash, request_parameters, response_elements,
    sign_digest, to_jsonl, verify, verify_digest, AuditError, AuditEvent, AuditPublicKey,
    AuditRecord, AuditSigningKey, ChainHead, DigestBody, DigestRecord, FailureKind, IdentityType,
    TlsDetails, UserIdentity, Verifier, GENESIS_HASH,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";
const ACCT: &str = "111122223333";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const T0: u64 = 1_700_000_000_000;

// ---- helpers --------------------------------------------------------------------------------

fn signing_key() -> AuditSigningKey {
    AuditSigningKey::from_bytes(&[7u8; 32])
}

fn public_keys() -> Vec<AuditPublicKey> {
    vec![signing_key().public_key(0, None)]
}

fn alice() -> UserIdentity {
    UserIdentity {
        identity_type: Some(IdentityType::IamUser),
        principal_id: Some("AIDAEXAMPLE".into()),
        arn: Some(format!("arn:aws:iam::{ACCT}:user/Alice")),
        account_id: Some(ACCT.into()),
        access_key_id: Some("AKIAEXAMPLE".into()),
        user_name: Some("Alice".into()),
        ..UserIdentity::default()
    }
}

fn event_json(i: u64) -> String {
    AuditEvent::api_call(
        "Encrypt",
        T0 + i * 1000,
        REGION,
        alice(),
        format!("event-{i}"),
        format!("request-{i}"),
    )
    .with_source("192.0.2.1", Some("aws-cli/2".into()))
    .with_request(&json!({"KeyId": KEY_ARN, "Plaintext": "c2VjcmV0", "EncryptionContext": {"n": i.to_string()}}))
    .with_key(ACCT, KEY_ARN)
    .to_json()
}

/// A log of `n` records with a digest right after each seq in `digest_after` (0 = a digest
/// before any record), as the leader would write it.
fn build_log(n: u64, digest_after: &[u64]) -> (Vec<AuditRecord>, Vec<DigestRecord>) {
    let key = signing_key();
    let mut head = ChainHead::genesis();
    let mut records = Vec::new();
    let mut digests: Vec<DigestRecord> = Vec::new();
    let sign = |head: &ChainHead, digests: &mut Vec<DigestRecord>| {
        let body = DigestBody::next(digests.last(), REGION, head, T0 + head.next_seq * 1000);
        digests.push(sign_digest(&key, body));
    };
    if digest_after.contains(&0) {
        sign(&head, &mut digests);
    }
    for i in 1..=n {
        records.push(head.append(event_json(i)));
        if digest_after.contains(&i) {
            sign(&head, &mut digests);
        }
    }
    (records, digests)
}

/// 50 records sealed by 3 digests (after 17, 34 and 50).
fn standard_log() -> (Vec<AuditRecord>, Vec<DigestRecord>) {
    build_log(50, &[17, 34, 50])
}

fn check(records: &[AuditRecord], digests: &[DigestRecord]) -> keystore::audit::VerifyReport {
    verify(records, digests, &public_keys(), None)
}

fn first_failure_of(
    records: &[AuditRecord],
    digests: &[DigestRecord],
) -> (Option<u64>, FailureKind) {
    let report = check(records, digests);
    let f = report
        .first_failure
        .unwrap_or_else(|| panic!("tampering went unnoticed"));
    (f.seq, f.kind)
}

fn rehash_from(records: &mut [AuditRecord], index: usize) {
    let mut head = if index == 0 {
        ChainHead::genesis()
    } else {
        ChainHead::after(&records[index - 1]).unwrap()
    };
    for r in records[index..].iter_mut() {
        head.next_seq = r.seq;
        *r = head.append(r.event.clone());
    }
}

// ---- events ---------------------------------------------------------------------------------

#[test]
fn api_call_event_uses_cloudtrail_member_names() {
    let event = AuditEvent::api_call("Decrypt", T0, REGION, alice(), "ev-1", "req-1")
        .with_source("192.0.2.1", Some("aws-cli/2.15".into()))
        .with_request(&json!({"KeyId": KEY_ARN, "CiphertextBlob": "AQID", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
        .with_key(ACCT, KEY_ARN)
        .with_tls(TlsDetails {
            tls_version: "TLSv1.3".into(),
            cipher_suite: "TLS_AES_128_GCM_SHA256".into(),
            client_provided_host_header: Some("kms.example".into()),
        });
    let v: Value = serde_json::from_str(&event.to_json()).unwrap();
    assert_eq!(v["eventVersion"], "1.08");
    assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
    assert_eq!(v["eventSource"], "kms.amazonaws.com");
    assert_eq!(v["eventName"], "Decrypt");
    assert_eq!(v["eventType"], "AwsApiCall");
    assert_eq!(v["awsRegion"], REGION);
    assert_eq!(v["sourceIPAddress"], "192.0.2.1");
    assert_eq!(v["userAgent"], "aws-cli/2.15");
    assert_eq!(v["userIdentity"]["type"], "IAMUser");
    assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
    assert_eq!(v["userIdentity"]["accountId"], ACCT);
    assert_eq!(v["requestID"], "req-1");
    assert_eq!(v["eventID"], "ev-1");
    assert_eq!(v["readOnly"], true);
    assert_eq!(v["managementEvent"], true);
    assert_eq!(v["eventCategory"], "Management");
    assert_eq!(v["recipientAccountId"], ACCT);
    assert_eq!(
        v["resources"],
        json!([{"accountId": ACCT, "type": "AWS::KMS::Key", "ARN": KEY_ARN}])
    );
    assert_eq!(
        v["requestParameters"],
        json!({"keyId": KEY_ARN, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"})
    );
    assert_eq!(v["tlsDetails"]["tlsVersion"], "TLSv1.3");
    assert_eq!(v["tlsDetails"]["cipherSuite"], "TLS_AES_128_GCM_SHA256");
    assert_eq!(v["tlsDetails"]["clientProvidedHostHeader"], "kms.example");
    // CloudTrail always writes responseElements, as null when there is nothing to record.
    assert_eq!(v.get("responseElements"), Some(&Value::Null));
    // Absent optionals are omitted.
    assert!(v.get("errorCode").is_none());
    assert!(v.get("errorMessage").is_none());
    assert!(v["userIdentity"].get("certificateFingerprint").is_none());
    assert!(v["userIdentity"].get("invokedBy").is_none());
}

#[test]
fn failed_call_records_error_code_and_message_and_no_response() {
    let event = AuditEvent::api_call("CreateGrant", T0, REGION, alice(), "e", "r")
        .with_response(&json!({"GrantId": "g-1"}))
        .with_error("AccessDeniedException", "User is not authorized");
    let v: Value = serde_json::from_str(&event.to_json()).unwrap();
    assert_eq!(v["errorCode"], "AccessDeniedException");
    assert_eq!(v["errorMessage"], "User is not authorized");
    assert_eq!(v["responseElements"], Value::Null);
    assert_eq!(v["readOnly"], false);
}

#[test]
fn mtls_caller_is_identified_by_certificate_fingerprint() {
    let fingerprint = hex::encode(Sha256::digest(b"leaf certificate DER"));
    let identity = UserIdentity {
        identity_type: Some(IdentityType::AwsService),
        arn: Some("arn:aws:iam::111122223333:role/app".into()),
        account_id: Some(ACCT.into()),
        certificate_fingerprint: Some(fingerprint.clone()),
        invoked_by: Some("s3.amazonaws.com".into()),
        ..UserIdentity::default()
    };
    let event = AuditEvent::api_call("Sign", T0, REGION, identity, "e", "r");
    let v: Value = serde_json::from_str(&event.to_json()).unwrap();
    assert_eq!(v["userIdentity"]["type"], "AWSService");
    assert_eq!(v["userIdentity"]["certificateFingerprint"], fingerprint);
    assert_eq!(v["userIdentity"]["invokedBy"], "s3.amazonaws.com");
    assert!(v["userIdentity"].get("accessKeyId").is_none());
    for (ty, name) in [
        (IdentityType::Root, "Root"),
        (IdentityType::IamUser, "IAMUser"),
        (IdentityType::AssumedRole, "AssumedRole"),
        (IdentityType::AwsService, "AWSService"),
        (IdentityType::AwsAccount, "AWSAccount"),
    ] {
        assert_eq!(serde_json::to_value(ty).unwrap(), json!(name));
    }
}

#[test]
fn scheduled_actions_are_service_events_like_cloudtrail_delete_key() {
    let event = AuditEvent::service_event("DeleteKey", T0, REGION, ACCT, KEY_ARN, "ev-9");
    let v: Value = serde_json::from_str(&event.to_json()).unwrap();
    assert_eq!(v["eventType"], "AwsServiceEvent");
    assert_eq!(v["eventName"], "DeleteKey");
    assert_eq!(
        v["userIdentity"],
        json!({"accountId": ACCT, "invokedBy": "AWS Internal"})
    );
    assert_eq!(v["sourceIPAddress"], "AWS Internal");
    assert_eq!(v["requestParameters"], Value::Null);
    assert_eq!(v["responseElements"], json!({"keyId": KEY_ARN}));
    assert_eq!(v["readOnly"], false);
    assert!(v.get("requestID").is_none());
    assert_eq!(v["resources"][0]["ARN"], KEY_ARN);
}

#[test]
fn event_json_round_trips() {
    let text = event_json(3);
    let event = AuditEvent::from_json(&text).unwrap();
    assert_eq!(event.to_json(), text);
    assert!(matches!(
        AuditEvent::from_json("{not json"),
        Err(AuditError::Event(_))
    ));
}

#[test]
fn event_time_is_rfc3339_utc_in_whole_seconds() {
    assert_eq!(format_event_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_event_time(999), "1970-01-01T00:00:00Z");
    assert_eq!(format_event_time(T0 + 123), "2023-11-14T22:13:20Z");
    assert_eq!(format_event_time(1_709_164_800_000), "2024-02-29T00:00:00Z");
    assert_eq!(format_event_time(1_735_689_599_000), "2024-12-31T23:59:59Z");
    // Total over u64: no panic for absurd times.
    assert!(format_event_time(u64::MAX).ends_with('Z'));
}

#[test]
fn read_only_follows_cloudtrail_for_kms() {
    for op in [
        "DescribeKey",
        "ListKeys",
        "ListAliases",
        "ListGrants",
        "GetKeyPolicy",
        "GetPublicKey",
        "GetKeyRotationStatus",
        "GetParametersForImport",
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateRandom",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "ListPrincipals",
        "GetPrincipal",
        "LookupEvents",
    ] {
        assert!(read_only(op), "{op} is a read");
    }
    for op in [
        "CreateKey",
        "EnableKey",
        "DisableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "CreateAlias",
        "DeleteAlias",
        "TagResource",
        "CreateGrant",
        "RetireGrant",
        "RevokeGrant",
        "PutKeyPolicy",
        "ImportKeyMaterial",
        "RotateKeyOnDemand",
        "EnableKeyRotation",
        "CreateAccessKey",
        "DeleteKey",
        "RotateKey",
        "Get",
        "List",
        "SomethingNew",
    ] {
        assert!(!read_only(op), "{op} is a write");
    }
}

// ---- redaction ------------------------------------------------------------------------------

#[test]
fn encrypt_keeps_key_context_and_algorithm_in_camel_case_and_drops_the_plaintext() {
    let request = json!({
        "KeyId": "alias/app",
        "Plaintext": "c2VjcmV0",
        "EncryptionContext": {"Department": "Engineering", "tenantId": "42"},
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "GrantTokens": ["token"],
    });
    assert_eq!(
        request_parameters("Encrypt", &request),
        json!({
            "keyId": "alias/app",
            // Context keys are user data: kept verbatim, not camelCased.
            "encryptionContext": {"Department": "Engineering", "tenantId": "42"},
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
        })
    );
    assert_eq!(
        response_elements(
            "Encrypt",
            &json!({"CiphertextBlob": "AQID", "KeyId": KEY_ARN})
        ),
        None
    );
}

#[test]
fn create_grant_records_grant_id_but_never_the_grant_token() {
    let request = json!({
        "KeyId": KEY_ARN,
        "GranteePrincipal": "arn:aws:iam::111122223333:role/app",
        "Operations": ["Encrypt", "Decrypt"],
        "Constraints": {"EncryptionContextSubset": {"Dept": "IT"}, "Sneaky": "x"},
        "Name": "app",
        "GrantTokens": ["secret-token"],
    });
    assert_eq!(
        request_parameters("CreateGrant", &request),
        json!({
            "keyId": KEY_ARN,
            "granteePrincipal": "arn:aws:iam::111122223333:role/app",
            "operations": ["Encrypt", "Decrypt"],
            "constraints": {"encryptionContextSubset": {"Dept": "IT"}},
            "name": "app",
        })
    );
    assert_eq!(
        response_elements(
            "CreateGrant",
            &json!({"GrantId": "g-1", "GrantToken": "secret-token"})
        ),
        Some(json!({"grantId": "g-1"}))
    );
}

#[test]
fn create_key_records_key_metadata_as_cloudtrail_spells_it() {
    let response = json!({"KeyMetadata": {
        "AWSAccountId": ACCT, "KeyId": "1234abcd", "Arn": KEY_ARN, "KeyState": "Enabled",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegionConfiguration": {"MultiRegionKeyType": "PRIMARY",
            "PrimaryKey": {"Arn": KEY_ARN, "Region": REGION}, "ReplicaKeys": []},
    }});
    assert_eq!(
        response_elements("CreateKey", &response),
        Some(json!({"keyMetadata": {
            "aWSAccountId": ACCT, "keyId": "1234abcd", "arn": KEY_ARN, "keyState": "Enabled",
            "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "multiRegionConfiguration": {"multiRegionKeyType": "PRIMARY",
                "primaryKey": {"arn": KEY_ARN, "region": REGION}, "replicaKeys": []},
        }}))
    );
    let tags =
        json!({"Tags": [{"TagKey": "env", "TagValue": "prod", "Extra": "x"}], "Description": "d"});
    assert_eq!(
        request_parameters("CreateKey", &tags),
        json!({"description": "d", "tags": [{"tagKey": "env", "tagValue": "prod"}]})
    );
}

#[test]
fn unknown_operations_members_and_shapes_record_nothing() {
    assert_eq!(
        request_parameters("NewOperation", &json!({"KeyId": "k"})),
        Value::Null
    );
    assert_eq!(
        request_parameters("Encrypt", &json!({"NewMember": "x"})),
        Value::Null
    );
    assert_eq!(
        request_parameters("Encrypt", &json!("not an object")),
        Value::Null
    );
    assert_eq!(request_parameters("ListKeys", &json!({})), Value::Null);
    // A structure smuggled into a member that holds a string is dropped.
    assert_eq!(
        request_parameters(
            "Encrypt",
            &json!({"KeyId": {"Plaintext": "s"}, "EncryptionContext": "s"})
        ),
        Value::Null
    );
    assert_eq!(response_elements("CreateKey", &json!(null)), None);
}

const CANARY: &str = "CANARY-7f3a";

/// Every operation the fronts serve (KMS and KeyraftIam), plus the service events.
const OPERATIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "UpdateKeyDescription",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    "GetPublicKey",
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "PutKeyPolicy",
    "GetKeyPolicy",
    "ListKeyPolicies",
    "CreateGrant",
    "ListGrants",
    "ListRetirableGrants",
    "RetireGrant",
    "RevokeGrant",
    "ReplicateKey",
    "UpdatePrimaryRegion",
    "CreatePrincipal",
    "ListPrincipals",
    "GetPrincipal",
    "DeletePrincipal",
    "CreateAccessKey",
    "ListAccessKeys",
    "DeleteAccessKey",
    "PutPrincipalPolicy",
    "GetPrincipalPolicy",
    "ListPrincipalPolicies",
    "DeletePrincipalPolicy",
    "IssueClientCertificate",
    "DeleteKey",
    "RotateKey",
    "DeleteExpiredKeyMaterial",
    "SomeFutureOperation",
];

/// Every member of the KMS and KeyraftIam APIs that carries a secret (or data CloudTrail
/// omits), plus one nobody has invented yet.
const SECRET_MEMBERS: &[&str] = &[
    "Plaintext",
    "CiphertextBlob",
    "CiphertextForRecipient",
    "Message",
    "Signature",
    "Mac",
    "PublicKey",
    "EncryptedKeyMaterial",
    "ImportToken",
    "GrantToken",
    "GrantTokens",
    "SecretAccessKey",
    "PrivateKeyPlaintext",
    "PrivateKeyCiphertextBlob",
    "SharedSecret",
    "PrivateKeyPem",
    "KeyMaterial",
    "Recipient",
    "AttestationDocument",
    "FutureSecretMember",
];

/// Every member some operation records, with a benign value of the shape it expects.
fn recorded_members() -> serde_json::Map<String, Value> {
    let scalars = [
        "KeyId",
        "EncryptionAlgorithm",
        "KeySpec",
        "NumberOfBytes",
        "KeyPairSpec",
        "SigningAlgorithm",
        "MessageType",
        "MacAlgorithm",
        "KeyAgreementAlgorithm",
        "Description",
        "KeyUsage",
        "Origin",
        "MultiRegion",
        "AliasName",
        "TargetKeyId",
        "PendingWindowInDays",
        "GranteePrincipal",
        "RetiringPrincipal",
        "Name",
        "GrantId",
        "Policy",
        "PolicyName",
        "BypassPolicyLockoutSafetyCheck",
        "RotationPeriodInDays",
        "WrappingAlgorithm",
        "WrappingKeySpec",
        "ExpirationModel",
        "ValidTo",
        "DestinationKeyId",
        "SourceKeyId",
        "Limit",
        "Marker",
        "PrincipalName",
        "PrincipalArn",
        "PolicyDocument",
        "AccessKeyId",
        "KeyMaterialId",
        "DeletionDate",
        "KeyState",
        "ParametersValidTo",
        "NotAfter",
        "ReplicaRegion",
        "PrimaryRegion",
        "ValidityDays",
        "CustomKeyStoreId",
    ];
    let mut m = serde_json::Map::new();
    for s in scalars {
        m.insert(s.into(), json!("benign"));
    }
    for ctx in [
        "EncryptionContext",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
    ] {
        m.insert(ctx.into(), json!({"purpose": "test"}));
    }
    m.insert("Operations".into(), json!(["Encrypt"]));
    m.insert("TagKeys".into(), json!(["env"]));
    m
}

/// `value` with a canary in every secret member, at the top level and inside every nested
/// structure an allow-list descends into.
fn with_canaries(mut base: serde_json::Map<String, Value>) -> Value {
    let nested = |extra: &mut serde_json::Map<String, Value>| {
        for member in SECRET_MEMBERS {
            extra.insert((*member).into(), json!(format!("{CANARY}-{member}")));
        }
    };
    let mut inner = serde_json::Map::new();
    nested(&mut inner);
    let mut tag = inner.clone();
    tag.insert("TagKey".into(), json!("k"));
    tag.insert("TagValue".into(), json!("v"));
    let mut constraints = inner.clone();
    constraints.insert("EncryptionContextSubset".into(), json!({"a": "b"}));
    let mut metadata = inner.clone();
    metadata.insert("KeyId".into(), json!("k"));
    let mut mr = inner.clone();
    mr.insert("PrimaryKey".into(), Value::Object(inner.clone()));
    mr.insert("ReplicaKeys".into(), json!([Value::Object(inner.clone())]));
    metadata.insert("MultiRegionConfiguration".into(), Value::Object(mr));
    base.insert("Tags".into(), json!([Value::Object(tag)]));
    base.insert("Constraints".into(), Value::Object(constraints));
    for structure in [
        "KeyMetadata",
        "ReplicaKeyMetadata",
        "Principal",
        "AccessKey",
    ] {
        base.insert(structure.into(), Value::Object(metadata.clone()));
    }
    nested(&mut base);
    Value::Object(base)
}

#[test]
fn no_secret_member_of_any_operation_reaches_an_event() {
    let payload = with_canaries(recorded_members());
    for op in OPERATIONS {
        let ok = AuditEvent::api_call(op, T0, REGION, alice(), "e", "r")
            .with_request(&payload)
            .with_response(&payload)
            .to_json();
        let failed = AuditEvent::api_call(op, T0, REGION, alice(), "e", "r")
            .with_request(&payload)
            .with_error("ValidationException", "bad")
            .to_json();
        for text in [ok, failed] {
            assert!(
                !text.contains(CANARY),
                "{op}: a secret reached the event: {text}"
            );
        }
    }
}

#[test]
fn recorded_members_still_reach_the_event() {
    // The canary test above would pass if redaction dropped everything; this one pins that
    // the allow-lists keep what CloudTrail records.
    let payload = with_canaries(recorded_members());
    let encrypt = request_parameters("Encrypt", &payload);
    assert_eq!(encrypt["keyId"], "benign");
    assert_eq!(encrypt["encryptionContext"], json!({"purpose": "test"}));
    let derive = request_parameters("DeriveSharedSecret", &payload);
    assert_eq!(
        derive,
        json!({"keyId": "benign", "keyAgreementAlgorithm": "benign"})
    );
    let access_key = json!({"AccessKey": {
        "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": CANARY,
        "PrincipalArn": "arn:aws:iam::111122223333:user/Alice", "CreationDate": 1,
    }});
    assert_eq!(
        response_elements("CreateAccessKey", &access_key),
        Some(json!({"accessKey": {
            "accessKeyId": "AKIAEXAMPLE",
            "principalArn": "arn:aws:iam::111122223333:user/Alice", "creationDate": 1,
        }}))
    );
    let import = request_parameters("ImportKeyMaterial", &payload);
    assert_eq!(import["keyId"], "benign");
    assert!(import.get("importToken").is_none());
}

// ---- the chain ------------------------------------------------------------------------------

#[test]
fn chain_starts_at_seq_1_from_the_genesis_hash() {
    let mut head = ChainHead::genesis();
    assert_eq!(head, ChainHead::default());
    assert_eq!(head.last_seq(), 0);
    let first = head.append("{\"a\":1}".into());
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, "0".repeat(64));
    assert_eq!(head.next_seq, 2);
    assert_eq!(head.head_hash_hex(), first.hash);
    let second = head.append("{\"a\":2}".into());
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(GENESIS_HASH, [0u8; 32]);
}

#[test]
fn record_hash_is_sha256_of_label_seq_prev_and_event() {
    let mut input = b"keyraft-audit-v1".to_vec();
    input.extend_from_slice(&5u64.to_be_bytes());
    input.extend_from_slice(&[0xab; 32]);
    input.extend_from_slice(b"{\"eventName\":\"Encrypt\"}");
    let expected: [u8; 32] = Sha256::digest(&input).into();
    assert_eq!(
        record_hash(5, &[0xab; 32], b"{\"eventName\":\"Encrypt\"}"),
        expected
    );

    let mut head = ChainHead {
        next_seq: 5,
        head_hash: [0xab; 32],
    };
    let record = head.append("{\"eventName\":\"Encrypt\"}".into());
    assert_eq!(record.hash, hex::encode(expected));
    assert!(record.hash_is_valid());
}

#[test]
fn replicas_appending_the_same_events_produce_identical_records() {
    let events: Vec<String> = (1..=20).map(event_json).collect();
    let (mut a, mut b) = (ChainHead::genesis(), ChainHead::genesis());
    let ra: Vec<_> = events.iter().map(|e| a.append(e.clone())).collect();
    let rb: Vec<_> = events.iter().map(|e| b.append(e.clone())).collect();
    assert_eq!(ra, rb);
    assert_eq!(a, b);
    // Events are stored verbatim.
    assert_eq!(ra[3].event, events[3]);
}

#[test]
fn a_head_resumes_after_its_last_record_and_serializes_as_hex() {
    let (records, _) = build_log(5, &[]);
    let mut resumed = ChainHead::after(&records[3]).unwrap();
    assert_eq!(resumed.append(records[4].event.clone()), records[4]);
    let text = serde_json::to_string(&resumed).unwrap();
    assert_eq!(
        text,
        format!("{{\"next_seq\":6,\"head_hash\":\"{}\"}}", records[4].hash)
    );
    assert_eq!(serde_json::from_str::<ChainHead>(&text).unwrap(), resumed);
    assert!(serde_json::from_str::<ChainHead>("{\"next_seq\":1,\"head_hash\":\"zz\"}").is_err());
    let mut bad = records[0].clone();
    bad.hash = "not hex".into();
    assert_eq!(ChainHead::after(&bad), None);
}

#[test]
fn jsonl_round_trips_records_and_digests_and_names_bad_lines() {
    let (records, digests) = standard_log();
    let text = to_jsonl(&records);
    assert_eq!(text.lines().count(), 50);
    assert!(text.ends_with('\n'));
    assert_eq!(parse_jsonl::<AuditRecord>(&text).unwrap(), records);
    assert_eq!(
        parse_jsonl::<DigestRecord>(&to_jsonl(&digests)).unwrap(),
        digests
    );
    // Blank lines (and CRLF) are tolerated.
    let crlf = text.replace('\n', "\r\n") + "\r\n";
    assert_eq!(parse_jsonl::<AuditRecord>(&crlf).unwrap().len(), 50);

    let mut lines: Vec<&str> = text.lines().collect();
    lines[6] = "{\"seq\":7,";
    let err = parse_jsonl::<AuditRecord>(&lines.join("\n")).unwrap_err();
    assert!(matches!(err, AuditError::Jsonl { line: 7, .. }), "{err}");
    // Unknown members are refused rather than silently dropped.
    let extra = text.replacen("{\"seq\":1,", "{\"seq\":1,\"x\":1,", 1);
    assert!(matches!(
        parse_jsonl::<AuditRecord>(&extra),
        Err(AuditError::Jsonl { line: 1, .. })
    ));
}

// ---- digests --------------------------------------------------------------------------------

#[test]
fn a_signed_digest_verifies_and_names_its_range_and_head() {
    let (records, digests) = standard_log();
    assert_eq!(digests.len(), 3);
    let d = &digests[1];
    assert_eq!((d.digest_seq, d.from_seq, d.to_seq), (2, 18, 34));
    assert_eq!(d.head_hash, records[33].hash);
    assert_eq!(
        d.previous_digest_signature.as_deref(),
        Some(digests[0].signature.as_str())
    );
    assert_eq!(digests[0].previous_digest_signature, None);
    assert_eq!(d.region, REGION);
    assert!(d.follows(&digests[0]));
    for d in &digests {
        verify_digest(d, &public_keys()).unwrap();
    }
    // Ed25519 is deterministic: the leader re-signing the same body gets the same record.
    let body = DigestBody::next(
        Some(&digests[0]),
        REGION,
        &ChainHead::after(&records[33]).unwrap(),
        d.signed_at,
    );
    assert_eq!(&sign_digest(&signing_key(), body), d);
}

#[test]
fn a_digest_may_cover_no_new_record() {
    let (records, digests) = build_log(3, &[0, 3]);
    assert_eq!((digests[0].from_seq, digests[0].to_seq), (1, 0));
    assert_eq!(digests[0].head_hash, "0".repeat(64));
    let head = ChainHead::after(&records[2]).unwrap();
    let idle = sign_digest(
        &signing_key(),
        DigestBody::next(digests.last(), REGION, &head, T0 + 99_000),
    );
    assert_eq!((idle.from_seq, idle.to_seq), (4, 3));
    let mut all = digests.clone();
    all.push(idle);
    assert!(check(&records, &all).is_ok());
    assert!(check(&[], &digests[..1]).is_ok());
}

#[test]
fn changing_any_signed_field_breaks_the_signature() {
    let (_, digests) = standard_log();
    let d = digests[1].clone();
    let mutations: [fn(&mut DigestRecord); 7] = [
        |d| d.digest_seq += 1,
        |d| d.region.push('x'),
        |d| d.from_seq += 1,
        |d| d.to_seq += 1,
        |d| d.head_hash = "0".repeat(64),
        |d| d.previous_digest_signature = None,
        |d| d.signed_at += 1,
    ];
    for (i, mutate) in mutations.iter().enumerate() {
        let mut m = d.clone();
        mutate(&mut m);
        let f = verify_digest(&m, &public_keys()).unwrap_err();
        assert_eq!(f.kind, FailureKind::BadSignature, "mutation {i}");
        assert_eq!(f.digest_seq, Some(m.digest_seq));
    }
    // The signature covers canonical bytes, not JSON member order or spacing.
    let v: Value = serde_json::to_value(&d).unwrap();
    let reordered: String = {
        let obj = v.as_object().unwrap();
        let members: Vec<String> = obj
            .iter()
            .rev()
            .map(|(k, v)| format!("{} : {}", json!(k), v))
            .collect();
        format!("{{ {} }}", members.join(" , "))
    };
    let parsed: DigestRecord = serde_json::from_str(&reordered).unwrap();
    verify_digest(&parsed, &public_keys()).unwrap();
}

#[test]
fn canonical_bytes_are_length_prefixed_and_start_with_the_label() {
    let (_, digests) = standard_log();
    let bytes = digests[0].canonical_bytes();
    assert!(bytes.starts_with(b"keyraft-audit-digest-v1"));
    // digest_seq, then u64 length of the region, then the region.
    let rest = &bytes[b"keyraft-audit-digest-v1".len()..];
    assert_eq!(&rest[..8], &1u64.to_be_bytes());
    assert_eq!(&rest[8..16], &(REGION.len() as u64).to_be_bytes());
    assert_eq!(&rest[16..16 + REGION.len()], REGION.as_bytes());
    // Moving a character between adjacent text fields changes the bytes.
    let mut a = digests[0].clone();
    let mut b = digests[0].clone();
    a.region = "us-east-1".into();
    a.head_hash = "ab".into();
    b.region = "us-east-1a".into();
    b.head_hash = "b".into();
    assert_ne!(a.canonical_bytes(), b.canonical_bytes());
}

#[test]
fn audit_keys_have_stable_ids_and_validity_windows() {
    let key = signing_key();
    let public = key.public_key(1000, Some(2000));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&public.public_key)
        .unwrap();
    assert_eq!(raw.len(), 32);
    assert_eq!(public.key_id, hex::encode(&Sha256::digest(&raw)[..8]));
    assert_eq!(public.key_id.len(), 16);
    assert_eq!(key.key_id(), public.key_id);
    assert!(!public.valid_at(999));
    assert!(public.valid_at(1000));
    assert!(public.valid_at(1999));
    assert!(!public.valid_at(2000));
    assert!(key.public_key(0, None).valid_at(u64::MAX));
    assert_eq!(
        AuditSigningKey::from_bytes(key.expose_secret()).key_id(),
        key.key_id()
    );
    assert!(AuditSigningKey::generate() != AuditSigningKey::generate());
    // A key whose id does not match its bytes is refused.
    let mut lying = public.clone();
    lying.key_id = "0000000000000000".into();
    assert!(matches!(
        lying.verifying_key(),
        Err(AuditError::PublicKey(_))
    ));
}

#[test]
fn digests_from_unknown_or_expired_keys_are_refused() {
    let (records, digests) = standard_log();
    let other = AuditSigningKey::from_bytes(&[9u8; 32]).public_key(0, None);
    let f = verify(&records, &digests, &[other], None)
        .first_failure
        .unwrap();
    assert_eq!(
        (f.kind, f.digest_seq, f.seq),
        (FailureKind::UnknownKey, Some(1), Some(1))
    );

    // Key retired before digest 2 was signed.
    let retired = signing_key().public_key(0, Some(digests[1].signed_at));
    let f = verify(&records, &digests, &[retired], None)
        .first_failure
        .unwrap();
    assert_eq!(
        (f.kind, f.digest_seq, f.seq),
        (FailureKind::KeyNotValidAt, Some(2), Some(18))
    );

    let mut garbage = digests.clone();
    garbage[2].signature = "!!not base64!!".into();
    let f = check(&records, &garbage).first_failure.unwrap();
    assert_eq!(
        (f.kind, f.digest_seq, f.seq),
        (FailureKind::BadSignature, Some(3), Some(35))
    );
}

#[test]
fn rotated_audit_keys_verify_their_own_periods() {
    let (old, new) = (signing_key(), AuditSigningKey::from_bytes(&[8u8; 32]));
    let (records, mut digests) = build_log(30, &[10, 20]);
    let head = ChainHead::after(&records[29]).unwrap();
    let rotated_at = T0 + 25_000;
    digests.push(sign_digest(
        &new,
        DigestBody::next(digests.last(), REGION, &head, rotated_at + 1),
    ));
    let keys = [
        old.public_key(0, Some(rotated_at)),
        new.public_key(rotated_at, None),
    ];
    let report = verify(&records, &digests, &keys, None);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.digests_checked, 3);
}

// ---- verification ---------------------------------------------------------------------------

#[test]
fn an_untouched_log_verifies() {
    let (records, digests) = standard_log();
    let report = check(&records, &digests);
    assert_eq!(report.first_failure, None);
    assert_eq!((report.records_checked, report.digests_checked), (50, 3));
    // Through the export format too.
    let records = parse_jsonl::<AuditRecord>(&to_jsonl(&records)).unwrap();
    let digests = parse_jsonl::<DigestRecord>(&to_jsonl(&digests)).unwrap();
    assert!(check(&records, &digests).is_ok());
    // And streaming, record by record.
    let mut v = Verifier::new(&digests, &public_keys(), None);
    assert!(records.iter().all(|r| v.push(r)));
    assert!(v.finish().is_ok());
}

#[test]
fn editing_any_record_is_caught_at_that_record() {
    let (records, digests) = standard_log();
    for i in 0..records.len() {
        let seq = records[i].seq;
        for edit in 0..3 {
            let mut m = records.clone();
            match edit {
                0 => m[i].event = m[i].event.replace("Encrypt", "Decrypt"),
                1 => m[i].prev_hash = "1".repeat(64),
                _ => m[i].hash = "2".repeat(64),
            }
            let (at, kind) = first_failure_of(&m, &digests);
            assert_eq!(at, Some(seq), "edit {edit} of record {seq}");
            assert_eq!(
                kind,
                FailureKind::EditedRecord,
                "edit {edit} of record {seq}"
            );
        }
    }
}

#[test]
fn deleting_any_record_is_caught_at_that_record() {
    let (records, digests) = standard_log();
    for i in 0..records.len() {
        let mut m = records.clone();
        let gone = m.remove(i).seq;
        let (at, kind) = first_failure_of(&m, &digests);
        let expected = if i + 1 == records.len() {
            FailureKind::Truncated
        } else {
            FailureKind::SequenceGap
        };
        assert_eq!((at, kind), (Some(gone), expected), "deleting record {gone}");
    }
}

#[test]
fn reordering_any_two_adjacent_records_is_caught_at_the_first() {
    let (records, digests) = standard_log();
    for i in 0..records.len() - 1 {
        let mut m = records.clone();
        m.swap(i, i + 1);
        let (at, kind) = first_failure_of(&m, &digests);
        assert_eq!(
            (at, kind),
            (Some(records[i].seq), FailureKind::SequenceOutOfOrder),
            "swap at {i}"
        );
    }
    // A record moved far away is out of order too, not deleted.
    let mut m = records.clone();
    let moved = m.remove(4);
    m.push(moved);
    assert_eq!(
        first_failure_of(&m, &digests),
        (Some(5), FailureKind::SequenceOutOfOrder)
    );
}

#[test]
fn inserting_a_record_anywhere_is_caught_at_or_before_it() {
    let (records, digests) = standard_log();
    for i in 0..records.len() {
        // A well-formed forgery: right seq, right link, right hash for its own content.
        let mut head = if i == 0 {
            ChainHead::genesis()
        } else {
            ChainHead::after(&records[i - 1]).unwrap()
        };
        let forged = head.append(event_json(999));
        let mut m = records.clone();
        m.insert(i, forged.clone());
        let (at, kind) = first_failure_of(&m, &digests);
        assert!(at <= Some(forged.seq), "insert at {i}: failure at {at:?}");
        assert!(
            matches!(
                kind,
                FailureKind::SequenceOutOfOrder | FailureKind::DigestMismatch
            ),
            "insert at {i}: {kind:?}"
        );
        // A duplicate of an existing record.
        let mut d = records.clone();
        d.insert(i, records[i].clone());
        let (at, kind) = first_failure_of(&d, &digests);
        assert_eq!(
            (at, kind),
            (Some(records[i].seq), FailureKind::SequenceOutOfOrder)
        );
    }
}

#[test]
fn truncating_the_log_is_caught_against_the_newest_digest() {
    let (records, digests) = standard_log();
    for keep in 0..records.len() {
        let (at, kind) = first_failure_of(&records[..keep], &digests);
        assert_eq!(
            (at, kind),
            (Some(keep as u64 + 1), FailureKind::Truncated),
            "keep {keep}"
        );
    }
}

#[test]
fn records_after_the_newest_digest_are_protected_only_by_the_chain() {
    // 55 records, last digest at 50: dropping 51..55 cannot be told from a log that has not
    // been written yet. The leader's digest interval (and shutdown digest) bounds this window.
    let (records, digests) = build_log(55, &[17, 34, 50]);
    assert!(check(&records[..50], &digests).is_ok());
    // But editing them is still caught.
    let mut m = records.clone();
    m[52].event.push(' ');
    assert_eq!(
        first_failure_of(&m, &digests),
        (Some(53), FailureKind::EditedRecord)
    );
}

#[test]
fn rewriting_records_with_recomputed_hashes_is_caught_by_the_next_digest() {
    let (records, digests) = standard_log();
    for i in [0usize, 10, 17, 33, 49] {
        let mut m = records.clone();
        m[i].event = m[i].event.replace("Encrypt", "Decrypt");
        rehash_from(&mut m, i);
        let next_digest_end = digests
            .iter()
            .map(|d| d.to_seq)
            .find(|&t| t >= m[i].seq)
            .unwrap();
        let report = check(&m, &digests);
        let f = report.first_failure.unwrap();
        assert_eq!(
            (f.seq, f.kind),
            (Some(next_digest_end), FailureKind::DigestMismatch),
            "rewrite at {i}"
        );
    }
}

#[test]
fn deleting_reordering_or_altering_digests_breaks_the_digest_chain() {
    let (records, digests) = standard_log();
    let mut deleted = digests.clone();
    deleted.remove(1);
    let f = check(&records, &deleted).first_failure.unwrap();
    assert_eq!(
        (f.kind, f.digest_seq),
        (FailureKind::DigestChainBroken, Some(3))
    );

    let mut swapped = digests.clone();
    swapped.swap(1, 2);
    assert_eq!(
        check(&records, &swapped).first_failure.unwrap().kind,
        FailureKind::DigestChainBroken
    );

    // Re-signed by the real key but with a wrong previous signature (an insider with the key
    // cannot splice digests either).
    let mut respliced = digests.clone();
    let mut body = DigestBody::next(
        Some(&digests[1]),
        REGION,
        &ChainHead::after(&records[49]).unwrap(),
        T0 + 60_000,
    );
    body.previous_digest_signature = Some(digests[0].signature.clone());
    respliced[2] = sign_digest(&signing_key(), body);
    let f = check(&records, &respliced).first_failure.unwrap();
    assert_eq!(
        (f.kind, f.digest_seq, f.seq),
        (FailureKind::DigestChainBroken, Some(3), Some(35))
    );

    // Digest 1 must start the chain.
    let mut first = digests.clone();
    let mut body = DigestBody::next(None, REGION, &ChainHead::after(&records[16]).unwrap(), T0);
    body.from_seq = 2;
    first[0] = sign_digest(&signing_key(), body);
    assert_eq!(
        check(&records, &first).first_failure.unwrap().kind,
        FailureKind::DigestChainBroken
    );
}

#[test]
fn the_lower_of_a_record_and_a_digest_failure_is_reported() {
    let (mut records, mut digests) = standard_log();
    digests[2].signature = digests[1].signature.clone(); // digest 3 (from 35) is bad
    records[39].event.push(' '); // record 40 is edited
    let f = check(&records, &digests).first_failure.unwrap();
    assert_eq!((f.kind, f.seq), (FailureKind::BadSignature, Some(35)));
    records[39] = standard_log().0[39].clone();
    records[9].event.push(' '); // record 10 is edited
    let f = check(&records, &digests).first_failure.unwrap();
    assert_eq!((f.kind, f.seq), (FailureKind::EditedRecord, Some(10)));
}

// ---- partial exports and ranges -------------------------------------------------------------

#[test]
fn without_a_range_the_log_must_start_at_seq_1() {
    let (records, digests) = standard_log();
    // Even where a digest ends (17): deleting a prefix is never mistaken for an export.
    for start in [1usize, 17, 19] {
        let f = check(&records[start..], &digests).first_failure.unwrap();
        assert_eq!(
            (f.seq, f.kind),
            (Some(1), FailureKind::SequenceGap),
            "start {start}"
        );
        assert!(f.message.contains("range"), "{}", f.message);
    }
}

#[test]
fn an_export_starting_mid_chain_verifies_with_a_range_starting_there() {
    let (records, digests) = standard_log();
    let tail = &records[19..]; // starts at 20, no digest ends at 19
    let report = verify(tail, &digests, &public_keys(), Some((20, 50)));
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records_checked, 31);
    // The range start vouches for record 20's prev_hash, but a later digest still checks it:
    // a forged start with recomputed hashes fails at digest 2.
    let mut forged = tail.to_vec();
    forged[0].prev_hash = "4".repeat(64);
    rehash_from(&mut forged, 0);
    let f = verify(&forged, &digests, &public_keys(), Some((20, 50)))
        .first_failure
        .unwrap();
    assert_eq!((f.seq, f.kind), (Some(34), FailureKind::DigestMismatch));
}

#[test]
fn a_digest_ending_just_before_a_range_must_agree_with_its_first_record() {
    let (records, digests) = standard_log();
    let tail = &records[17..]; // starts at 18; digest 1 ends at 17
    assert!(verify(tail, &digests, &public_keys(), Some((18, 50))).is_ok());
    let mut m = tail.to_vec();
    m[0].prev_hash = "3".repeat(64);
    rehash_from(&mut m, 0);
    let f = verify(&m, &digests, &public_keys(), Some((18, 50)))
        .first_failure
        .unwrap();
    assert_eq!((f.seq, f.kind), (Some(18), FailureKind::BrokenLink));
}

#[test]
fn a_range_checks_only_its_records_and_the_digests_that_touch_it() {
    let (records, digests) = standard_log();
    // The whole export, range in the middle: records outside are skipped.
    let report = verify(&records, &digests, &public_keys(), Some((20, 40)));
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records_checked, 21);
    // Tampering outside the range is not this range's business.
    let mut m = records.clone();
    m[5].event.push(' ');
    assert!(verify(&m, &digests, &public_keys(), Some((20, 40))).is_ok());
    // Missing records at the start of the range are deleted records.
    let f = verify(&records[11..], &digests, &public_keys(), Some((10, 40)))
        .first_failure
        .unwrap();
    assert_eq!((f.seq, f.kind), (Some(10), FailureKind::SequenceGap));
    // Records missing at the end of a range that a digest covers are a truncation.
    let f = verify(&records[..30], &digests, &public_keys(), Some((1, 40)))
        .first_failure
        .unwrap();
    assert_eq!((f.seq, f.kind), (Some(31), FailureKind::Truncated));
    // A range past the end of the log is fine when no digest claims more.
    assert!(verify(&records, &digests, &public_keys(), Some((1, 1_000))).is_ok());
}

// ---- garbage --------------------------------------------------------------------------------

#[test]
fn garbage_input_is_reported_never_panics() {
    let (records, digests) = standard_log();
    let junk = AuditRecord {
        seq: u64::MAX,
        prev_hash: "zz".into(),
        event: String::new(),
        hash: "ä".into(),
    };
    let zero = AuditRecord {
        seq: 0,
        prev_hash: String::new(),
        event: "x".into(),
        hash: String::new(),
    };
    let mut bad_digest = digests[0].clone();
    bad_digest.to_seq = u64::MAX;
    bad_digest.from_seq = u64::MAX;
    bad_digest.head_hash = "ÿ".into();
    bad_digest.signature = "====".into();
    bad_digest.digest_seq = u64::MAX;
    let bad_key = AuditPublicKey {
        key_id: "x".repeat(10_000),
        public_key: "%%%".into(),
        valid_from: u64::MAX,
        valid_to: Some(0),
    };
    let record_sets: Vec<Vec<AuditRecord>> = vec![
        vec![],
        vec![junk.clone()],
        vec![zero.clone()],
        vec![records[0].clone(), junk.clone(), zero.clone()],
        {
            let mut r = records.clone();
            r.push(junk.clone());
            r
        },
    ];
    let digest_sets = vec![
        vec![],
        digests.clone(),
        vec![bad_digest.clone()],
        vec![digests[0].clone(), bad_digest],
    ];
    let key_sets = vec![vec![], public_keys(), vec![bad_key]];
    let ranges = [
        None,
        Some((0, 0)),
        Some((u64::MAX, u64::MAX)),
        Some((5, 1)),
        Some((1, u64::MAX)),
    ];
    for r in &record_sets {
        for d in &digest_sets {
            for k in &key_sets {
                for range in ranges {
                    let report = verify(r, d, k, range);
                    if let Some(f) = &report.first_failure {
                        assert!(
                            f.message.len() < 1_000,
                            "messages stay short: {}",
                            f.message
                        );
                    }
                }
            }
        }
    }
    assert_eq!(first_failure_of(&[zero], &[]).1, FailureKind::EditedRecord);
    let f = check(&[records[0].clone(), AuditRecord { seq: 2, ..junk }], &[])
        .first_failure
        .unwrap();
    assert_eq!((f.seq, f.kind), (Some(2), FailureKind::EditedRecord));
}

// ---- properties -----------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Tamper {
    Edit,
    Delete,
    Swap,
    Insert,
    Duplicate,
    Truncate,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::Edit),
        Just(Tamper::Delete),
        Just(Tamper::Swap),
        Just(Tamper::Insert),
        Just(Tamper::Duplicate),
        Just(Tamper::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single tampering of a log sealed by a digest at its end is caught, at or before
    /// the tampered seq.
    #[test]
    fn any_single_tampering_is_caught_at_or_before_it(
        n in 2u64..40,
        cuts in proptest::collection::vec(1u64..40, 0..4),
        what in tamper(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut at: Vec<u64> = cuts.into_iter().filter(|&c| c < n).collect();
        at.push(n);
        let (records, digests) = build_log(n, &at);
        prop_assert!(check(&records, &digests).is_ok());
        let len = records.len();
        let mut m = records.clone();
        let (tampered_seq, tampered) = match what {
            Tamper::Edit => {
                let i = pos.index(len);
                let mut bytes = m[i].event.clone().into_bytes();
                let j = usize::from(byte) % bytes.len();
                bytes[j] = if bytes[j] == b'x' { b'y' } else { b'x' };
                m[i].event = String::from_utf8_lossy(&bytes).into_owned();
                (records[i].seq, true)
            }
            Tamper::Delete => {
                let i = pos.index(len);
                (m.remove(i).seq, true)
            }
            Tamper::Swap => {
                let i = pos.index(len - 1);
                m.swap(i, i + 1);
                (records[i].seq, true)
            }
            Tamper::Insert => {
                let i = pos.index(len);
                let mut head = if i == 0 { ChainHead::genesis() } else { ChainHead::after(&records[i - 1]).unwrap() };
                let forged = head.append(format!("{{\"forged\":{byte}}}"));
                let seq = forged.seq;
                m.insert(i, forged);
                (seq, true)
            }
            Tamper::Duplicate => {
                let i = pos.index(len);
                m.insert(i, records[i].clone());
                (records[i].seq, true)
            }
            Tamper::Truncate => {
                let keep = pos.index(len);
                m.truncate(keep);
                (keep as u64 + 1, true)
            }
        };
        prop_assume!(tampered && m != records);
        let report = check(&m, &digests);
        let failure = report.first_failure.clone();
        prop_assert!(failure.is_some(), "{:?} at {} went unnoticed", what, tampered_seq);
        let f = failure.unwrap();
        prop_assert!(f.seq.is_some_and(|s| s <= tampered_seq), "{:?} at {}: reported {:?}", what, tampered_seq, f);
    }

    /// Verification is total: arbitrary records, digests and ranges never panic.
    #[test]
    fn verify_never_panics(
        seqs in proptest::collection::vec(any::<u64>(), 0..8),
        texts in proptest::collection::vec(".{0,70}", 0..8),
        to_seq in any::<u64>(),
        range in proptest::option::of((any::<u64>(), any::<u64>())),
    ) {
        let records: Vec<AuditRecord> = seqs.iter().zip(texts.iter().cycle()).map(|(s, t)| AuditRecord {
            seq: *s, prev_hash: t.clone(), event: t.clone(), hash: t.clone(),
        }).collect();
        let (_, mut digests) = build_log(1, &[1]);
        digests[0].to_seq = to_seq;
        let _ = verify(&records, &digests, &public_keys(), range);
        let _ = parse_jsonl::<AuditRecord>(&texts.join("\n"));
    }

    /// Redaction is total and keeps nothing from members outside the allow-lists.
    #[test]
    fn redaction_drops_every_unlisted_member(
        op in prop::sample::select(OPERATIONS),
        name in "[A-Z][A-Za-z]{0,20}",
    ) {
        let listed = recorded_members();
        prop_assume!(!listed.contains_key(&name) && !["Tags", "Constraints", "KeyMetadata", "ReplicaKeyMetadata", "Principal", "AccessKey"].contains(&name.as_str()));
        let request = json!({ name.clone(): CANARY, "Nested": {"Plaintext": CANARY} });
        let text = AuditEvent::api_call(op, T0, REGION, alice(), "e", "r")
            .with_request(&request)
            .with_response(&request)
            .to_json();
        prop_assert!(!text.contains(CANARY));
    }
}
