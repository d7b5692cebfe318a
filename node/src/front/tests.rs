//! Operations and the JSON router end to end over a real storage node (see `testing`).

use keystore::crypto::Secret;
use keystore::sigv4;

use super::shapes::*;
use super::testing::*;
use super::{Caller, Kms};

fn caller(arn: &str) -> Caller {
    Caller::from_principal_arn(arn).unwrap()
}

fn secret(b: &[u8]) -> Option<SecretBlob> {
    Some(SecretBlob(Secret::new(b.to_vec())))
}

async fn new_key(kms: &Kms, who: &Caller) -> KeyMetadata {
    kms.create_key(
        who,
        CreateKeyRequest {
            description: Some("test".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .key_metadata
    .unwrap()
}

fn ctx(pairs: &[(&str, &str)]) -> Option<EncryptionContextMap> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

async fn encrypt(
    kms: &Kms,
    who: &Caller,
    key: &str,
    pt: &[u8],
    c: Option<EncryptionContextMap>,
) -> Result<Vec<u8>, super::KmsError> {
    let r = kms
        .encrypt(
            who,
            EncryptRequest {
                key_id: Some(key.into()),
                plaintext: secret(pt),
                encryption_context: c,
                ..Default::default()
            },
        )
        .await?;
    Ok(r.ciphertext_blob.unwrap().0)
}

async fn decrypt(
    kms: &Kms,
    who: &Caller,
    blob: Vec<u8>,
    c: Option<EncryptionContextMap>,
) -> Result<Vec<u8>, super::KmsError> {
    let r = kms
        .decrypt(
            who,
            DecryptRequest {
                ciphertext_blob: Some(Blob(blob)),
                encryption_context: c,
                ..Default::default()
            },
        )
        .await?;
    Ok(r.plaintext.unwrap().expose_secret().to_vec())
}

#[tokio::test]
async fn create_describe_encrypt_decrypt_round_trip() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let md = new_key(&kms, &admin).await;
    let key_id = md.key_id.clone().unwrap();
    assert_eq!(md.key_state.as_deref(), Some("Enabled"));
    assert_eq!(md.enabled, Some(true));
    assert_eq!(md.key_spec.as_deref(), Some("SYMMETRIC_DEFAULT"));
    assert_eq!(
        md.arn.as_deref(),
        Some(format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}").as_str())
    );

    let d = kms
        .describe_key(
            &admin,
            DescribeKeyRequest {
                key_id: Some(key_id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.key_metadata.unwrap().description.as_deref(), Some("test"));

    let c = ctx(&[("purpose", "test")]);
    let blob = encrypt(&kms, &admin, &key_id, b"hello", c.clone())
        .await
        .unwrap();
    assert_eq!(
        decrypt(&kms, &admin, blob.clone(), c).await.unwrap(),
        b"hello"
    );
    // The root of the account may do the same without an identity record.
    assert_eq!(
        decrypt(&kms, &caller(ROOT), blob, ctx(&[("purpose", "test")]))
            .await
            .unwrap(),
        b"hello"
    );
}

#[tokio::test]
async fn decrypt_rejects_mismatched_context_and_tampered_blobs() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let key_id = new_key(&kms, &admin).await.key_id.unwrap();
    let blob = encrypt(&kms, &admin, &key_id, b"hello", ctx(&[("a", "1")]))
        .await
        .unwrap();
    for c in [None, ctx(&[("a", "2")]), ctx(&[("a", "1"), ("b", "2")])] {
        let e = decrypt(&kms, &admin, blob.clone(), c).await.unwrap_err();
        assert_eq!(e.aws_type(), "InvalidCiphertextException");
    }
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        decrypt(&kms, &admin, bad, ctx(&[("a", "1")]))
            .await
            .unwrap_err()
            .aws_type(),
        "InvalidCiphertextException"
    );
    for junk in [vec![0u8], vec![0xff; 100], b"not a blob at all".to_vec()] {
        assert_eq!(
            decrypt(&kms, &admin, junk, None)
                .await
                .unwrap_err()
                .aws_type(),
            "InvalidCiphertextException"
        );
    }
}

#[tokio::test]
async fn aliases_resolve_by_name_and_arn() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let md = new_key(&kms, &admin).await;
    let key_id = md.key_id.unwrap();
    kms.create_alias(
        &admin,
        AliasRequest {
            alias_name: Some("alias/app".into()),
            target_key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    let dup = kms
        .create_alias(
            &admin,
            AliasRequest {
                alias_name: Some("alias/app".into()),
                target_key_id: Some(key_id.clone()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(dup.aws_type(), "AlreadyExistsException");
    for r in [
        "alias/app",
        "arn:aws:kms:us-east-1:111122223333:alias/app",
        md.arn.as_deref().unwrap(),
    ] {
        let blob = encrypt(&kms, &admin, r, b"x", None).await.unwrap();
        assert_eq!(decrypt(&kms, &admin, blob, None).await.unwrap(), b"x");
    }
    let e = encrypt(&kms, &admin, "alias/missing", b"x", None)
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "NotFoundException");
    assert_eq!(
        e.to_string(),
        "Alias arn:aws:kms:us-east-1:111122223333:alias/missing is not found."
    );

    let list = kms
        .list_aliases(&admin, ListAliasesRequest::default())
        .await
        .unwrap();
    assert_eq!(list.aliases.len(), 1);
    assert_eq!(
        list.aliases[0].target_key_id.as_deref(),
        Some(key_id.as_str())
    );

    let other = new_key(&kms, &admin).await.key_id.unwrap();
    kms.update_alias(
        &admin,
        AliasRequest {
            alias_name: Some("alias/app".into()),
            target_key_id: Some(other.clone()),
        },
    )
    .await
    .unwrap();
    let d = kms
        .describe_key(
            &admin,
            DescribeKeyRequest {
                key_id: Some("alias/app".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        d.key_metadata.unwrap().key_id.as_deref(),
        Some(other.as_str())
    );
    kms.delete_alias(
        &admin,
        DeleteAliasRequest {
            alias_name: Some("alias/app".into()),
        },
    )
    .await
    .unwrap();
    assert!(kms
        .list_aliases(&admin, ListAliasesRequest::default())
        .await
        .unwrap()
        .aliases
        .is_empty());
    let e = kms
        .create_alias(
            &admin,
            AliasRequest {
                alias_name: Some("alias/aws/x".into()),
                target_key_id: Some(other),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "NotAuthorizedException");
}

#[tokio::test]
async fn disabled_key_refuses_crypto_until_enabled() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    // The watch stream invalidates the cached record at once (well within the 1 s bound).
    let _follow = kms.follow_store_changes();
    let key_id = new_key(&kms, &admin).await.key_id.unwrap();
    let blob = encrypt(&kms, &admin, &key_id, b"x", None).await.unwrap();
    kms.disable_key(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let e = decrypt(&kms, &admin, blob.clone(), None).await.unwrap_err();
    assert_eq!(e.aws_type(), "DisabledException");
    assert_eq!(
        encrypt(&kms, &admin, &key_id, b"x", None)
            .await
            .unwrap_err()
            .aws_type(),
        "DisabledException"
    );
    kms.enable_key(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(decrypt(&kms, &admin, blob, None).await.unwrap(), b"x");
}

#[tokio::test]
async fn another_fronts_watch_stream_revokes_a_disabled_key_long_before_its_cache_expires() {
    // A 60 s staleness bound: only the watch stream can make front B notice within the test.
    let (a, b, _node) = super::testing::two_fronts(std::time::Duration::from_secs(60)).await;
    let _follow = b.follow_store_changes();
    let admin = caller(ADMIN);
    let key_id = new_key(&a, &admin).await.key_id.unwrap();
    // B caches the key by using it.
    let blob = encrypt(&b, &admin, &key_id, b"x", None).await.unwrap();
    a.disable_key(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match decrypt(&b, &admin, blob.clone(), None).await {
            Err(e) if e.aws_type() == "DisabledException" => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => panic!(
                "front B still honours the disabled key: {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[tokio::test]
async fn a_front_without_the_watch_stream_keeps_its_cached_record_until_the_bound() {
    // The control for the test above: same set-up, B not following the store's changes.
    let (a, b, _node) = super::testing::two_fronts(std::time::Duration::from_secs(60)).await;
    let admin = caller(ADMIN);
    let key_id = new_key(&a, &admin).await.key_id.unwrap();
    let blob = encrypt(&b, &admin, &key_id, b"x", None).await.unwrap();
    a.disable_key(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(decrypt(&b, &admin, blob, None).await.unwrap(), b"x");
}

#[tokio::test]
async fn cache_expires_after_staleness_bound_without_watch() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let key_id = new_key(&kms, &admin).await.key_id.unwrap();
    encrypt(&kms, &admin, &key_id, b"x", None).await.unwrap(); // caches the record
    kms.disable_key(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        encrypt(&kms, &admin, &key_id, b"x", None)
            .await
            .unwrap_err()
            .aws_type(),
        "DisabledException"
    );
}

#[tokio::test]
async fn non_admins_and_other_accounts_are_denied() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let md = new_key(&kms, &admin).await;
    let key_arn = md.arn.unwrap();
    let e = encrypt(&kms, &caller(APP), &key_arn, b"x", None)
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "AccessDeniedException");
    assert_eq!(
        e.to_string(),
        format!(
            "User: {APP} is not authorized to perform: kms:Encrypt on resource: {key_arn} because no \
             identity-based policy allows the kms:Encrypt action"
        )
    );
    assert_eq!(
        kms.create_key(&caller(APP), CreateKeyRequest::default())
            .await
            .unwrap_err()
            .aws_type(),
        "AccessDeniedException"
    );
    // Another account: by bare id the key does not exist there; by ARN it is not theirs.
    let other = caller(OTHER_ROOT);
    let e = encrypt(&kms, &other, md.key_id.as_deref().unwrap(), b"x", None)
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "NotFoundException");
    let e = encrypt(&kms, &other, &key_arn, b"x", None)
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "AccessDeniedException");
    let blob = encrypt(&kms, &admin, &key_arn, b"x", None).await.unwrap();
    assert_eq!(
        decrypt(&kms, &other, blob, None)
            .await
            .unwrap_err()
            .aws_type(),
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn data_keys_random_and_reencrypt() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let k1 = new_key(&kms, &admin).await.key_id.unwrap();
    let k2 = new_key(&kms, &admin).await.key_id.unwrap();
    let dk = kms
        .generate_data_key(
            &admin,
            GenerateDataKeyRequest {
                key_id: Some(k1.clone()),
                key_spec: Some("AES_256".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let plain = dk.plaintext.unwrap().expose_secret().to_vec();
    assert_eq!(plain.len(), 32);
    let blob = dk.ciphertext_blob.unwrap().0;
    assert_eq!(
        decrypt(&kms, &admin, blob.clone(), None).await.unwrap(),
        plain
    );

    let wo = kms
        .generate_data_key_without_plaintext(
            &admin,
            GenerateDataKeyRequest {
                key_id: Some(k1.clone()),
                number_of_bytes: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        decrypt(&kms, &admin, wo.ciphertext_blob.unwrap().0, None)
            .await
            .unwrap()
            .len(),
        7
    );

    let re = kms
        .re_encrypt(
            &admin,
            ReEncryptRequest {
                ciphertext_blob: Some(Blob(blob.clone())),
                destination_key_id: Some(k2.clone()),
                destination_encryption_context: ctx(&[("x", "y")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(re.source_key_id.unwrap().ends_with(&k1));
    assert!(re.key_id.unwrap().ends_with(&k2));
    assert_eq!(
        decrypt(
            &kms,
            &admin,
            re.ciphertext_blob.unwrap().0,
            ctx(&[("x", "y")])
        )
        .await
        .unwrap(),
        plain
    );

    // Decrypt naming the wrong key.
    let e = kms
        .decrypt(
            &admin,
            DecryptRequest {
                ciphertext_blob: Some(Blob(blob)),
                key_id: Some(k2),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "IncorrectKeyException");

    let r = kms
        .generate_random(
            &admin,
            GenerateRandomRequest {
                number_of_bytes: Some(1024),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.plaintext.unwrap().0.len(), 1024);
    let e = kms
        .generate_random(
            &admin,
            GenerateRandomRequest {
                number_of_bytes: Some(1025),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "ValidationException");
}

#[tokio::test]
async fn encrypt_validates_plaintext_and_required_members() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let key_id = new_key(&kms, &admin).await.key_id.unwrap();
    assert_eq!(
        encrypt(&kms, &admin, &key_id, &[0u8; 4097], None)
            .await
            .unwrap_err()
            .aws_type(),
        "ValidationException"
    );
    assert_eq!(
        encrypt(&kms, &admin, &key_id, b"", None)
            .await
            .unwrap_err()
            .aws_type(),
        "ValidationException"
    );
    encrypt(&kms, &admin, &key_id, &[7u8; 4096], None)
        .await
        .unwrap();
    let e = kms
        .encrypt(
            &admin,
            EncryptRequest {
                key_id: Some(key_id),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        super::KmsError::missing("Plaintext").to_string()
    );
    let e = kms
        .encrypt(
            &admin,
            EncryptRequest {
                key_id: Some("nope".into()),
                plaintext: secret(b"x"),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Key 'arn:aws:kms:us-east-1:111122223333:key/nope' does not exist"
    );
}

#[tokio::test]
async fn deletion_schedule_and_cancel() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let key_id = new_key(&kms, &admin).await.key_id.unwrap();
    let bad = kms
        .schedule_key_deletion(
            &admin,
            ScheduleKeyDeletionRequest {
                key_id: Some(key_id.clone()),
                pending_window_in_days: Some(6),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.aws_type(), "ValidationException");
    let r = kms
        .schedule_key_deletion(
            &admin,
            ScheduleKeyDeletionRequest {
                key_id: Some(key_id.clone()),
                pending_window_in_days: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.key_state.as_deref(), Some("PendingDeletion"));
    assert_eq!(r.pending_window_in_days, Some(30));
    assert!(r.deletion_date.unwrap() > 0.0);
    let _f = kms.follow_store_changes();
    let e = encrypt(&kms, &admin, &key_id, b"x", None)
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "KMSInvalidStateException");
    kms.cancel_key_deletion(
        &admin,
        KeyIdRequest {
            key_id: Some(key_id.clone()),
        },
    )
    .await
    .unwrap();
    let md = kms
        .describe_key(
            &admin,
            DescribeKeyRequest {
                key_id: Some(key_id),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state.as_deref(), Some("Disabled"));
}

#[tokio::test]
async fn list_keys_and_tags_paginate() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_key(&kms, &admin).await.key_id.unwrap());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_keys(
                &admin,
                ListKeysRequest {
                    limit: Some(2),
                    marker: marker.clone(),
                },
            )
            .await
            .unwrap();
        assert!(page.keys.len() <= 2);
        seen.extend(page.keys.into_iter().map(|k| k.key_id.unwrap()));
        if !page.truncated {
            break;
        }
        marker = page.next_marker;
    }
    assert_eq!(seen, ids);
    let e = kms
        .list_keys(
            &admin,
            ListKeysRequest {
                limit: None,
                marker: Some("not-a-marker-we-issued".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "InvalidMarkerException");

    let key = ids[0].clone();
    let tags: Vec<Tag> = (0..5)
        .map(|i| Tag {
            tag_key: Some(format!("k{i}")),
            tag_value: Some(format!("v{i}")),
        })
        .collect();
    kms.tag_resource(
        &admin,
        TagResourceRequest {
            key_id: Some(key.clone()),
            tags: Some(tags),
        },
    )
    .await
    .unwrap();
    kms.untag_resource(
        &admin,
        UntagResourceRequest {
            key_id: Some(key.clone()),
            tag_keys: Some(vec!["k0".into()]),
        },
    )
    .await
    .unwrap();
    let p1 = kms
        .list_resource_tags(
            &admin,
            ListResourceTagsRequest {
                key_id: Some(key.clone()),
                limit: Some(3),
                marker: None,
            },
        )
        .await
        .unwrap();
    assert!(p1.truncated);
    let p2 = kms
        .list_resource_tags(
            &admin,
            ListResourceTagsRequest {
                key_id: Some(key.clone()),
                limit: Some(3),
                marker: p1.next_marker,
            },
        )
        .await
        .unwrap();
    assert!(!p2.truncated);
    let keys: Vec<String> = p1
        .tags
        .into_iter()
        .chain(p2.tags)
        .map(|t| t.tag_key.unwrap())
        .collect();
    assert_eq!(keys, ["k1", "k2", "k3", "k4"]);
    let e = kms
        .tag_resource(
            &admin,
            TagResourceRequest {
                key_id: Some(key),
                tags: Some(vec![Tag {
                    tag_key: Some("aws:x".into()),
                    tag_value: Some(String::new()),
                }]),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_type(), "TagException");
}

#[tokio::test]
async fn create_key_rejects_unsupported_and_malformed_options() {
    let (kms, _node) = kms().await;
    let admin = caller(ADMIN);
    let cases = [
        (
            // Multi-region keys with imported material are not built yet.
            CreateKeyRequest {
                multi_region: Some(true),
                origin: Some("EXTERNAL".into()),
                ..Default::default()
            },
            "UnsupportedOperationException",
        ),
        (
            CreateKeyRequest {
                key_spec: Some("SM2".into()),
                key_usage: Some("SIGN_VERIFY".into()),
                ..Default::default()
            },
            "UnsupportedOperationException",
        ),
        (
            // Every other spec exists; its usage must fit (the default ENCRYPT_DECRYPT does not).
            CreateKeyRequest {
                key_spec: Some("ECC_NIST_P256".into()),
                ..Default::default()
            },
            "ValidationException",
        ),
        (
            CreateKeyRequest {
                key_spec: Some("NOPE".into()),
                ..Default::default()
            },
            "ValidationException",
        ),
        (
            CreateKeyRequest {
                key_usage: Some("SIGN_VERIFY".into()),
                ..Default::default()
            },
            "ValidationException",
        ),
        (
            CreateKeyRequest {
                policy: Some("{not json".into()),
                ..Default::default()
            },
            "MalformedPolicyDocumentException",
        ),
        (
            CreateKeyRequest {
                description: Some("d".repeat(8193)),
                ..Default::default()
            },
            "ValidationException",
        ),
    ];
    for (req, ty) in cases {
        assert_eq!(
            kms.create_key(&admin, req).await.unwrap_err().aws_type(),
            ty
        );
    }
    // A policy must say something: AWS refuses an empty statement list.
    let empty = kms
        .create_key(
            &admin,
            CreateKeyRequest {
                policy: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(empty.aws_type(), "MalformedPolicyDocumentException");
    let md = kms
        .create_key(
            &admin,
            CreateKeyRequest {
                policy: Some(keystore::policy::default_key_policy("111122223333")),
                customer_master_key_spec: Some("SYMMETRIC_DEFAULT".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(md.key_metadata.is_some());
}

#[tokio::test]
async fn store_outage_is_dependency_timeout() {
    let kms = kms_without_store().await;
    let admin = caller(ADMIN);
    let e = kms
        .create_key(&admin, CreateKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.wire(), ("DependencyTimeoutException", 500));
    assert!(!kms.ready().await);
}

// ---- the HTTP layer --------------------------------------------------------------------

mod http_layer {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    use crate::front::aws_json::handle;

    fn now_amz() -> String {
        sigv4::format_amz_date(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
    }

    fn signed(
        op: &str,
        body: &str,
        akid: &str,
        secret: &str,
        region: &str,
        amz_date: &str,
    ) -> http::Request<Full<Bytes>> {
        let target = format!("TrentService.{op}");
        let headers: Vec<(&str, &[u8])> = vec![
            ("host", b"kms.local".as_slice()),
            ("content-type", b"application/x-amz-json-1.1".as_slice()),
            ("x-amz-date", amz_date.as_bytes()),
            ("x-amz-target", target.as_bytes()),
        ];
        let req = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: body.as_bytes(),
        };
        let auth = sigv4::sign(
            &req,
            &["host", "content-type", "x-amz-date", "x-amz-target"],
            akid,
            secret.as_bytes(),
            region,
            "kms",
        )
        .unwrap();
        http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "kms.local")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    async fn call(kms: &Kms, req: http::Request<Full<Bytes>>) -> (u16, serde_json::Value, bool) {
        let resp = handle(kms, req).await;
        let status = resp.status().as_u16();
        let has_id = resp.headers().contains_key("x-amzn-requestid");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, v, has_id)
    }

    #[tokio::test]
    async fn signed_requests_run_operations() {
        let (kms, _node) = kms().await;
        let d = now_amz();
        let (s, v, id) = call(
            &kms,
            signed("CreateKey", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!((s, id), (200, true), "{v}");
        let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        let body = format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGVsbG8="}}"#);
        let (s, v, _) = call(
            &kms,
            signed("Encrypt", &body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let blob = v["CiphertextBlob"].as_str().unwrap();
        let (s, v, _) = call(
            &kms,
            signed(
                "Decrypt",
                &format!(r#"{{"CiphertextBlob":"{blob}"}}"#),
                ADMIN_AKID,
                ADMIN_SECRET,
                REGION,
                &d,
            ),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(v["Plaintext"], "aGVsbG8=");
        // The app identity authenticates but is not authorized.
        let (s, v, _) = call(
            &kms,
            signed("Encrypt", &body, APP_AKID, APP_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(
            (s, v["__type"].as_str()),
            (400, Some("AccessDeniedException"))
        );
    }

    #[tokio::test]
    async fn authentication_failures_map_to_aws_errors() {
        let (kms, _node) = kms().await;
        let d = now_amz();
        let cases = [
            (
                signed("ListKeys", "{}", "AKIAUNKNOWN000000000", "x", REGION, &d),
                "UnrecognizedClientException",
            ),
            (
                signed("ListKeys", "{}", ADMIN_AKID, "wrong secret", REGION, &d),
                "InvalidSignatureException",
            ),
            (
                signed("ListKeys", "{}", ADMIN_AKID, ADMIN_SECRET, "eu-west-1", &d),
                "InvalidSignatureException",
            ),
            (
                signed(
                    "ListKeys",
                    "{}",
                    ADMIN_AKID,
                    ADMIN_SECRET,
                    REGION,
                    "20200101T000000Z",
                ),
                "InvalidSignatureException",
            ),
            (
                signed("Nope", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d),
                "UnknownOperationException",
            ),
        ];
        for (req, ty) in cases {
            let (s, v, _) = call(&kms, req).await;
            assert_eq!((s, v["__type"].as_str()), (400, Some(ty)), "{v}");
        }
        let mut unsigned = signed("ListKeys", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d);
        unsigned.headers_mut().remove("authorization");
        let (_, v, _) = call(&kms, unsigned).await;
        assert_eq!(v["__type"], "MissingAuthenticationTokenException");
        let mut garbled = signed("ListKeys", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d);
        garbled.headers_mut().insert(
            "authorization",
            http::HeaderValue::from_static("AWS4-HMAC-SHA256 nonsense"),
        );
        let (_, v, _) = call(&kms, garbled).await;
        assert_eq!(v["__type"], "IncompleteSignatureException");
        // Body swapped after signing.
        let good = signed("ListKeys", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d);
        let (parts, _) = good.into_parts();
        let swapped =
            http::Request::from_parts(parts, Full::new(Bytes::from_static(b"{\"Limit\":1}")));
        let (_, v, _) = call(&kms, swapped).await;
        assert_eq!(v["__type"], "InvalidSignatureException");
    }

    #[tokio::test]
    async fn bad_bodies_never_panic() {
        let (kms, _node) = kms().await;
        let d = now_amz();
        for body in [
            "",
            "{",
            "[]",
            "null",
            "{\"Plaintext\":123}",
            "{\"KeyId\":\"k\",\"Plaintext\":\"!!!\"}",
            "\u{0}",
        ] {
            let (s, v, _) = call(
                &kms,
                signed("Encrypt", body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
            )
            .await;
            assert_eq!(s, 400, "{body:?} -> {v}");
            let ty = v["__type"].as_str().unwrap();
            assert!(
                ty == "SerializationException" || ty == "ValidationException",
                "{body:?} -> {ty}"
            );
        }
        let huge = "x".repeat(super::super::aws_json::MAX_BODY + 1);
        let (s, v, _) = call(
            &kms,
            signed("Encrypt", &huge, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 413, "{v}");
        let mut wrong_type = signed("ListKeys", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d);
        wrong_type
            .headers_mut()
            .insert("content-type", http::HeaderValue::from_static("text/plain"));
        let (s, _, _) = call(&kms, wrong_type).await;
        assert_eq!(s, 400);
    }

    #[tokio::test]
    async fn health_endpoints() {
        let (kms, node) = kms().await;
        let get = |p: &str| {
            http::Request::builder()
                .uri(p)
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        assert_eq!(handle(&kms, get("/healthz")).await.status(), 200);
        assert_eq!(handle(&kms, get("/readyz")).await.status(), 200);
        node.stop().await;
        assert_eq!(handle(&kms, get("/readyz")).await.status(), 503);
        assert_eq!(handle(&kms, get("/healthz")).await.status(), 200);
    }

    /// Status, body and the x-amzn-RequestId of one call.
    async fn call_with_id(
        kms: &Kms,
        req: http::Request<Full<Bytes>>,
    ) -> (u16, serde_json::Value, String) {
        let resp = handle(kms, req).await;
        let status = resp.status().as_u16();
        let id = resp.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, v, id)
    }

    async fn events(kms: &Kms) -> Vec<keystore::audit::AuditEvent> {
        kms.audit_records(1, 1000)
            .await
            .unwrap()
            .iter()
            .map(|r| keystore::audit::AuditEvent::from_json(&r.event).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn every_authenticated_call_is_audited_before_its_answer() {
        let (kms, _node) = kms().await;
        let d = now_amz();
        let mut ids = Vec::new();
        let (s, v, id) = call_with_id(
            &kms,
            signed("CreateKey", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        ids.push(id);
        let key_arn = v["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
        let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        // "canary plaintext" in base64.
        let body = format!(
            r#"{{"KeyId":"{key_id}","Plaintext":"Y2FuYXJ5IHBsYWludGV4dA==","EncryptionContext":{{"purpose":"audit-test"}}}}"#
        );
        let (s, _, id) = call_with_id(
            &kms,
            signed("Encrypt", &body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 200);
        ids.push(id);
        let (s, v, id) = call_with_id(
            &kms,
            signed("Encrypt", &body, APP_AKID, APP_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(v["__type"], "AccessDeniedException");
        assert_eq!(s, 400);
        ids.push(id);
        // A bad signature over a known access key: recorded with the key's principal.
        let (_, v, id) = call_with_id(
            &kms,
            signed("ListKeys", "{}", ADMIN_AKID, "wrong secret", REGION, &d),
        )
        .await;
        assert_eq!(v["__type"], "InvalidSignatureException");
        ids.push(id);
        // An unknown access key names nobody: not recorded.
        let (_, v, _) = call_with_id(
            &kms,
            signed("ListKeys", "{}", "AKIAUNKNOWN000000000", "x", REGION, &d),
        )
        .await;
        assert_eq!(v["__type"], "UnrecognizedClientException");

        let events = events(&kms).await;
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.event_name.as_str(),
                    e.user_identity.arn.as_deref(),
                    e.error_code.as_deref(),
                    e.request_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("CreateKey", Some(ADMIN), None, Some(ids[0].as_str())),
                ("Encrypt", Some(ADMIN), None, Some(ids[1].as_str())),
                (
                    "Encrypt",
                    Some(APP),
                    Some("AccessDeniedException"),
                    Some(ids[2].as_str())
                ),
                (
                    "ListKeys",
                    Some(ADMIN),
                    Some("InvalidSignatureException"),
                    Some(ids[3].as_str())
                ),
            ]
        );
        let encrypt = &events[1];
        assert_eq!(
            encrypt.user_identity.access_key_id.as_deref(),
            Some(ADMIN_AKID)
        );
        assert_eq!(
            encrypt.user_identity.identity_type,
            Some(keystore::audit::IdentityType::IamUser)
        );
        assert_eq!(encrypt.resources.len(), 1);
        assert_eq!(encrypt.resources[0].arn, key_arn);
        assert_eq!(
            encrypt.request_parameters["encryptionContext"]["purpose"],
            "audit-test"
        );
        assert_eq!(events[2].resources[0].arn, key_arn);
        for e in &events {
            let text = e.to_json();
            assert!(!text.contains("Y2FuYXJ5IHBsYWludGV4dA"), "{text}");
            assert!(!text.contains("canary plaintext"), "{text}");
            assert!(!text.contains(ADMIN_SECRET), "{text}");
        }
        assert_eq!(kms.audit().stats().appended, 4);
    }

    #[tokio::test]
    async fn sync_audit_fails_closed_and_async_answers_when_the_store_is_down() {
        use crate::front::audit::{AuditMode, AuditSettings};
        use std::sync::Arc;
        // Long staleness: both fronts can serve Encrypt from their caches after the outage.
        let (a, b, node) = two_fronts(std::time::Duration::from_secs(120)).await;
        let settings = |mode| AuditSettings {
            mode,
            timeout: std::time::Duration::from_millis(800),
            ..Default::default()
        };
        let sync = Arc::try_unwrap(a)
            .ok()
            .expect("sole owner")
            .with_audit(settings(AuditMode::Sync));
        let lax = Arc::try_unwrap(b)
            .ok()
            .expect("sole owner")
            .with_audit(settings(AuditMode::Async));
        let d = now_amz();
        let (s, v, _) = call_with_id(
            &sync,
            signed("CreateKey", "{}", ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        let body = format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGVsbG8="}}"#);
        for kms in [&sync, &lax] {
            let (s, v, _) = call_with_id(
                kms,
                signed("Encrypt", &body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
            )
            .await;
            assert_eq!(s, 200, "{v}");
        }
        node.stop().await;

        let (s, v, _) = call_with_id(
            &lax,
            signed("Encrypt", &body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(s, 200, "async mode answers from the cache: {v}");
        assert!(v["CiphertextBlob"].is_string());

        let (s, v, _) = call_with_id(
            &sync,
            signed("Encrypt", &body, ADMIN_AKID, ADMIN_SECRET, REGION, &d),
        )
        .await;
        assert_eq!(
            (s, v["__type"].as_str()),
            (500, Some("KMSInternalException"))
        );
        assert!(v.get("CiphertextBlob").is_none(), "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with(
                "The request could not be recorded in the audit trail; it was not answered."
            ),
            "{message}"
        );
        assert!(message.contains("(audit: "), "{message}");
        assert_eq!(sync.audit().stats().failed, 1);

        // The async front's event is lost, and counted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lax.audit().stats().dropped == 0 {
            assert!(std::time::Instant::now() < deadline, "drop not counted");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(lax.audit().stats().dropped, 1);
    }
}

/// Polls `check` on a front until it is denied, failing if that takes longer than `bound`.
async fn denied_within<F, Fut>(bound: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, super::KmsError>>,
{
    let deadline = std::time::Instant::now() + bound;
    loop {
        match check().await {
            Err(e) if e.aws_type() == "AccessDeniedException" => return,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => panic!(
                "the other front still honours a revoked permission: {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[tokio::test]
async fn policy_and_grant_revocations_reach_every_front_within_the_bound() {
    let (a, b, _node) = super::testing::two_fronts(std::time::Duration::from_secs(60)).await;
    let _follow = b.follow_store_changes();
    let admin = caller(ADMIN);
    let app = caller(APP);
    let root_only = keystore::policy::default_key_policy(ACCOUNT);
    let allowing_app = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"{ROOT}"}},"Action":"kms:*","Resource":"*"}},
            {{"Effect":"Allow","Principal":{{"AWS":"{APP}"}},"Action":"kms:Encrypt","Resource":"*"}}]}}"#
    );
    let key_id = a
        .create_key(
            &admin,
            CreateKeyRequest {
                policy: Some(allowing_app),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
        .unwrap();
    // B caches the key (and its policy) by using it for App.
    encrypt(&b, &app, &key_id, b"x", None).await.unwrap();
    a.put_key_policy(
        &admin,
        PutKeyPolicyRequest {
            key_id: Some(key_id.clone()),
            policy: Some(root_only),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bound = std::time::Duration::from_secs(1);
    denied_within(bound, || encrypt(&b, &app, &key_id, b"x", None)).await;

    // A grant, used on B without a token (so through B's cache), then revoked on A.
    let grant = a
        .create_grant(
            &admin,
            CreateGrantRequest {
                key_id: Some(key_id.clone()),
                grantee_principal: Some(APP.into()),
                operations: Some(vec!["Encrypt".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + bound;
    while encrypt(&b, &app, &key_id, b"x", None).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "front B never saw the new grant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    a.revoke_grant(
        &admin,
        RevokeGrantRequest {
            key_id: Some(key_id.clone()),
            grant_id: grant.grant_id,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    denied_within(bound, || encrypt(&b, &app, &key_id, b"x", None)).await;
}

#[tokio::test]
async fn a_grant_token_works_at_once_on_a_front_whose_cache_has_not_seen_the_grant() {
    // B does not follow the watch stream and caches for a minute: only the token can help.
    let (a, b, _node) = super::testing::two_fronts(std::time::Duration::from_secs(60)).await;
    let admin = caller(ADMIN);
    let app = caller(APP);
    let key_id = new_key(&a, &admin).await.key_id.unwrap();
    // B caches "no grants" for the key.
    assert_eq!(
        encrypt(&b, &app, &key_id, b"x", None)
            .await
            .unwrap_err()
            .aws_type(),
        "AccessDeniedException"
    );
    let grant = a
        .create_grant(
            &admin,
            CreateGrantRequest {
                key_id: Some(key_id.clone()),
                grantee_principal: Some(APP.into()),
                operations: Some(vec!["Encrypt".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let with_token = |token: String| EncryptRequest {
        key_id: Some(key_id.clone()),
        plaintext: secret(b"x"),
        grant_tokens: Some(vec![token]),
        ..Default::default()
    };
    let token = grant.grant_token.unwrap();
    b.encrypt(&app, with_token(token.clone())).await.unwrap();
    // Without the token B's cache still says no: the token is what made the difference.
    assert!(encrypt(&b, &app, &key_id, b"x", None).await.is_err());
    a.retire_grant(
        &admin,
        RetireGrantRequest {
            grant_token: Some(token.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        b.encrypt(&app, with_token(token))
            .await
            .unwrap_err()
            .aws_type(),
        "AccessDeniedException"
    );
}
