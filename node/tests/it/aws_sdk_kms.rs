//! The AWS SDK for Rust (aws-sdk-kms, nobody here wrote it) against a real three-node dev
//! region: SigV4, the JSON 1.1 protocol, shapes and error types as AWS clients expect them.

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState, Tag};

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_key_lifecycle_follows_aws_states() {
    let region = DevRegion::start(port_base_for(1));
    let kms = region.admin_client();

    let created = kms
        .create_key()
        .description("orders table")
        .tags(tag("DataClassification", "Sensitive"))
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let key_id = meta.key_id().to_string();
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.description(), Some("orders table"));
    assert_eq!(meta.aws_account_id(), Some("111122223333"));
    assert_eq!(
        meta.arn().unwrap(),
        format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}")
    );
    assert!(meta.enabled());
    assert!(meta.creation_date().is_some());

    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), key_id);

    kms.update_key_description()
        .key_id(&key_id)
        .description("orders v2")
        .send()
        .await
        .unwrap();
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().description(),
        Some("orders v2")
    );

    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let err = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "DisabledException");
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    kms.encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap();

    let err = kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(6)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    let deletion = scheduled.deletion_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (deletion - now - 7 * 86400).abs() < 120,
        "deletion date {deletion} vs now {now}"
    );
    let err = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "KMSInvalidStateException");
    let err = kms.enable_key().key_id(&key_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "KMSInvalidStateException");

    kms.cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().key_state(),
        Some(&KeyState::Disabled)
    );
    let err = kms
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "KMSInvalidStateException");

    let err = kms
        .describe_key()
        .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_paginates_with_limit_and_marker() {
    let region = DevRegion::start(port_base_for(2));
    let kms = region.admin_client();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            kms.create_key()
                .send()
                .await
                .unwrap()
                .key_metadata()
                .unwrap()
                .key_id()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.keys().len() <= 2);
        seen.extend(page.keys().iter().map(|k| k.key_id().unwrap().to_string()));
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_string);
    }
    created.sort();
    seen.sort();
    assert_eq!(seen, created);
    let err = kms.list_keys().limit(0).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let err = kms
        .list_keys()
        .marker("not-a-marker-we-issued")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidMarkerException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_decrypt_reencrypt_and_data_keys_round_trip() {
    let region = DevRegion::start(port_base_for(3));
    let kms = region.admin_client();
    let a = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let b = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();

    let enc = kms
        .encrypt()
        .key_id(&a)
        .plaintext(Blob::new("card 4111-1111"))
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(
        enc.key_id().unwrap(),
        format!("arn:aws:kms:us-east-1:111122223333:key/{a}")
    );
    let blob = enc.ciphertext_blob().unwrap().clone();

    // Decrypt without naming the key: the blob says which key.
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"card 4111-1111");
    assert_eq!(dec.key_id().unwrap(), enc.key_id().unwrap());

    // The context is bound exactly: missing, other value, other case all fail the same way.
    for ctx in [None, Some(("tenant", "other")), Some(("Tenant", "acme"))] {
        let mut req = kms.decrypt().ciphertext_blob(blob.clone());
        if let Some((k, v)) = ctx {
            req = req.encryption_context(k, v);
        }
        let err = req.send().await.unwrap_err();
        assert_eq!(
            error_code(&err),
            "InvalidCiphertextException",
            "context {ctx:?}"
        );
    }
    let mut tampered = blob.clone().into_inner();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = kms
        .decrypt()
        .ciphertext_blob(Blob::new(tampered))
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidCiphertextException");
    let err = kms
        .decrypt()
        .ciphertext_blob(Blob::new("garbage"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidCiphertextException");
    let err = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .key_id(&b)
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "IncorrectKeyException");

    // ReEncrypt moves the ciphertext to key b with a new context.
    let re = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("tenant", "acme")
        .destination_key_id(&b)
        .destination_encryption_context("tenant", "acme-2")
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_id().unwrap(), enc.key_id().unwrap());
    let dec = kms
        .decrypt()
        .ciphertext_blob(re.ciphertext_blob().unwrap().clone())
        .encryption_context("tenant", "acme-2")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"card 4111-1111");
    assert!(dec.key_id().unwrap().ends_with(&b));

    // Envelope encryption: the data key decrypts back to the plaintext copy.
    let dk = kms
        .generate_data_key()
        .key_id(&a)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 32);
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.plaintext().unwrap().as_ref(),
        dk.plaintext().unwrap().as_ref()
    );
    let dk = kms
        .generate_data_key()
        .key_id(&a)
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 64);
    let err = kms.generate_data_key().key_id(&a).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let wp = kms
        .generate_data_key_without_plaintext()
        .key_id(&a)
        .key_spec(DataKeySpec::Aes128)
        .send()
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .ciphertext_blob(wp.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref().len(), 16);

    let random = kms
        .generate_random()
        .number_of_bytes(1024)
        .send()
        .await
        .unwrap();
    assert_eq!(random.plaintext().unwrap().as_ref().len(), 1024);
    let err = kms
        .generate_random()
        .number_of_bytes(1025)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");

    let err = kms
        .encrypt()
        .key_id(&a)
        .plaintext(Blob::new(vec![0u8; 4097]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    kms.encrypt()
        .key_id(&a)
        .plaintext(Blob::new(vec![0u8; 4096]))
        .send()
        .await
        .unwrap();
    let err = kms
        .encrypt()
        .key_id("alias/does-not-exist")
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_tags_behave_like_aws() {
    let region = DevRegion::start(port_base_for(4));
    let kms = region.admin_client();
    let a = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let b = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();

    kms.create_alias()
        .alias_name("alias/customer-data")
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    let err = kms
        .create_alias()
        .alias_name("alias/customer-data")
        .target_key_id(&b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AlreadyExistsException");
    let err = kms
        .create_alias()
        .alias_name("customer-data")
        .target_key_id(&a)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let err = kms
        .create_alias()
        .alias_name("alias/aws/s3")
        .target_key_id(&a)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotAuthorizedException");
    let err = kms
        .create_alias()
        .alias_name("alias/x")
        .target_key_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");

    // The alias, and the alias ARN, work wherever a key id does.
    let enc = kms
        .encrypt()
        .key_id("alias/customer-data")
        .plaintext(Blob::new("p"))
        .send()
        .await
        .unwrap();
    assert!(enc.key_id().unwrap().ends_with(&a));
    let by_arn = kms
        .describe_key()
        .key_id("arn:aws:kms:us-east-1:111122223333:alias/customer-data")
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.key_metadata().unwrap().key_id(), a);

    kms.update_alias()
        .alias_name("alias/customer-data")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();
    let listed = kms.list_aliases().key_id(&b).send().await.unwrap();
    let names: Vec<_> = listed
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, vec!["alias/customer-data"]);
    let entry = &listed.aliases()[0];
    assert_eq!(entry.target_key_id(), Some(b.as_str()));
    assert_eq!(
        entry.alias_arn(),
        Some("arn:aws:kms:us-east-1:111122223333:alias/customer-data")
    );
    assert!(kms
        .list_aliases()
        .key_id(&a)
        .send()
        .await
        .unwrap()
        .aliases()
        .is_empty());

    kms.delete_alias()
        .alias_name("alias/customer-data")
        .send()
        .await
        .unwrap();
    let err = kms
        .delete_alias()
        .alias_name("alias/customer-data")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");

    kms.tag_resource()
        .key_id(&a)
        .tags(tag("env", "prod"))
        .tags(tag("team", "db"))
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&a)
        .tags(tag("env", "staging"))
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&a)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = kms.list_resource_tags().key_id(&a).send().await.unwrap();
    let pairs: Vec<_> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(pairs, vec![("env", "staging")]);
    let err = kms
        .tag_resource()
        .key_id(&a)
        .tags(tag("aws:reserved", "x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "TagException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_authorization_errors_have_aws_shapes() {
    let region = DevRegion::start(port_base_for(5));
    let admin = region.admin_client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();

    let app = region.app_client();
    let err = app
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDeniedException");
    let err = app.create_key().send().await.unwrap_err();
    assert_eq!(error_code(&err), "AccessDeniedException");

    let wrong_secret = region.sdk_client(
        &region.var("AWS_ACCESS_KEY_ID"),
        "0000000000000000000000000000000000000000",
    );
    let err = wrong_secret.list_keys().send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidSignatureException");

    let unknown = region.sdk_client(
        "AKIAUNKNOWNUNKNOWN00",
        "0000000000000000000000000000000000000000",
    );
    let err = unknown.list_keys().send().await.unwrap_err();
    assert_eq!(error_code(&err), "UnrecognizedClientException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_survives_a_dead_storage_node_and_a_full_restart() {
    let mut region = DevRegion::start(port_base_for(6));
    let kms = region.admin_client();
    let key = kms
        .create_key()
        .description("durable")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    kms.create_alias()
        .alias_name("alias/durable")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("keep me"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();

    // Kill the leader itself: the remaining two elect a new one and the region keeps serving.
    let leader = region.leader_id().await;
    region.kill_node(leader as u32);
    let new_leader = region.leader_id().await;
    assert_ne!(new_leader, leader);
    let second = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"keep me");
    kms.describe_key()
        .key_id("alias/durable")
        .send()
        .await
        .unwrap();

    region.stop();
    region.launch();
    let kms = region.admin_client();
    let dec = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"keep me");
    for id in [&key, &second] {
        kms.describe_key().key_id(id).send().await.unwrap();
    }
    let aliased = kms
        .describe_key()
        .key_id("alias/durable")
        .send()
        .await
        .unwrap();
    assert_eq!(
        aliased.key_metadata().unwrap().description(),
        Some("durable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_every_storage_node_fails_closed_and_a_restart_recovers() {
    let mut region = DevRegion::start(port_base_for(8));
    let kms = region.admin_client_without_retries();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();

    for n in 1..=3 {
        region.kill_node(n);
    }
    // Management reads are linearizable: with no store they fail with AWS's retryable error,
    // never a hang and never a stale answer.
    let started = std::time::Instant::now();
    let err = kms.describe_key().key_id(&key).send().await.unwrap_err();
    assert_eq!(error_code(&err), "DependencyTimeoutException");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let err = kms.create_key().send().await.unwrap_err();
    assert_eq!(error_code(&err), "DependencyTimeoutException");

    region.stop();
    region.launch();
    let kms = region.admin_client();
    let out = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_really_deleted_when_its_waiting_period_ends() {
    // The leader's clock follows an offset file (a DANGER switch for tests), so the 7-day
    // window can pass in a second instead of a week.
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("clock-offset-ms");
    let region = DevRegion::start_with(
        port_base_for(9),
        &["--danger-clock-offset-file", offset.to_str().unwrap()],
    );
    let kms = region.admin_client();
    let doomed = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let kept = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    kms.create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&doomed)
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    // Six days on: still pending.
    std::fs::write(&offset, (6 * 86_400_000i64).to_string()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let meta = kms.describe_key().key_id(&doomed).send().await.unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state(),
        Some(&KeyState::PendingDeletion)
    );

    // Past seven days: the leader's scheduler deletes the key and its alias.
    std::fs::write(&offset, (7 * 86_400_000i64 + 60_000).to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match kms.describe_key().key_id(&doomed).send().await {
            Err(e) if error_code(&e) == "NotFoundException" => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => panic!("key not deleted in time: {other:?}"),
        }
    }
    let aliases = kms.list_aliases().send().await.unwrap();
    assert!(aliases
        .aliases()
        .iter()
        .all(|a| a.alias_name() != Some("alias/doomed")));
    let keys = kms.list_keys().send().await.unwrap();
    let ids: Vec<_> = keys.keys().iter().filter_map(|k| k.key_id()).collect();
    assert!(!ids.contains(&doomed.as_str()) && ids.contains(&kept.as_str()));
    let err = kms
        .encrypt()
        .key_id(&doomed)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");
}
