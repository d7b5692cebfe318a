//! GetKeyLastUsage against a real dev region, through aws-sdk-kms, the Rust SDK (gRPC) and
//! kmsctl; and audit retention: records that were not exported are never pruned, however old.

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::operation::RequestId as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyLastUsageTrackingOperation as TrackedOp;
use keystore::command::{Command, Query, QueryOutput};

const APP: &str = "arn:aws:iam::111122223333:role/App";

async fn create_key(kms: &aws_sdk_kms::Client) -> (String, String) {
    let out = kms.create_key().send().await.unwrap();
    let meta = out.key_metadata().unwrap();
    (meta.key_id().to_string(), meta.arn().unwrap().to_string())
}

fn secs(d: &aws_sdk_kms::primitives::DateTime) -> f64 {
    d.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_key_last_usage_reports_the_newest_successful_crypto_call_on_every_api() {
    let region = DevRegion::start(port_base_for(120));
    let kms = region.admin_client();
    let (key_id, key_arn) = create_key(&kms).await;

    // Never used: no KeyLastUsage; tracking started before (or with) the key.
    let fresh = kms
        .get_key_last_usage()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fresh.key_id(),
        Some(key_id.as_str()),
        "the key id, not the ARN"
    );
    assert!(fresh.key_last_usage().is_none());
    let created = secs(fresh.key_creation_date().unwrap());
    assert_eq!(
        secs(fresh.tracking_start_date().unwrap()),
        created,
        "a key created after tracking began is tracked from its creation"
    );

    // Encrypt: tracked, with the call's request id and audit event id.
    let enc = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"hello".to_vec()))
        .send()
        .await
        .unwrap();
    let enc_request_id = enc.request_id().unwrap().to_string();
    let after_encrypt = kms
        .get_key_last_usage()
        .key_id(&key_arn)
        .send()
        .await
        .unwrap();
    let usage = after_encrypt.key_last_usage().expect("used");
    assert_eq!(usage.operation(), Some(&TrackedOp::Encrypt));
    assert_eq!(usage.kms_request_id(), Some(enc_request_id.as_str()));
    let event_id = usage.cloud_trail_event_id().unwrap().to_string();
    assert_eq!(event_id.len(), 36, "a UUID: {event_id}");
    assert!(secs(usage.timestamp().unwrap()) >= created.floor());

    // A failed call and a non-cryptographic call leave it alone.
    let bad = kms
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob().unwrap().clone())
        .encryption_context("wrong", "context")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&bad), "InvalidCiphertextException");
    kms.describe_key().key_id(&key_id).send().await.unwrap();
    let unchanged = kms
        .get_key_last_usage()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        unchanged.key_last_usage().unwrap().cloud_trail_event_id(),
        Some(event_id.as_str())
    );

    // Decrypt through the key (named by nothing: the ciphertext names it).
    kms.decrypt()
        .ciphertext_blob(enc.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    let after_decrypt = kms
        .get_key_last_usage()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after_decrypt.key_last_usage().unwrap().operation(),
        Some(&TrackedOp::Decrypt)
    );

    // ReEncrypt marks both keys.
    let (other_id, _) = create_key(&kms).await;
    kms.re_encrypt()
        .ciphertext_blob(enc.ciphertext_blob().unwrap().clone())
        .destination_key_id(&other_id)
        .send()
        .await
        .unwrap();
    for k in [&key_id, &other_id] {
        let u = kms.get_key_last_usage().key_id(k).send().await.unwrap();
        assert_eq!(
            u.key_last_usage().unwrap().operation(),
            Some(&TrackedOp::ReEncrypt),
            "{k}"
        );
    }

    // Aliases are refused, as AWS documents; so is an unknown key.
    kms.create_alias()
        .alias_name("alias/usage")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    for bad_ref in [
        "alias/usage",
        "arn:aws:kms:us-east-1:111122223333:alias/usage",
    ] {
        let err = kms
            .get_key_last_usage()
            .key_id(bad_ref)
            .send()
            .await
            .unwrap_err();
        assert_eq!(error_code(&err), "NotFoundException", "{bad_ref}");
    }
    let err = kms
        .get_key_last_usage()
        .key_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFoundException");

    // gRPC (Rust SDK) answers the same.
    let grpc = region.grpc_admin();
    let g = grpc
        .get_key_last_usage()
        .key_id(&other_id)
        .send()
        .await
        .unwrap();
    assert_eq!(g.key_id, other_id);
    assert_eq!(g.key_last_usage.unwrap().operation, "ReEncrypt");
    assert!(g.tracking_start_date.is_some());

    // kmsctl prints it in the AWS CLI's shape.
    let kmsctl = Path::new(env!("CARGO_BIN_EXE_keyraft")).with_file_name("kmsctl");
    let mut cmd = Process::new(&kmsctl);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KMS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("--env-file")
        .arg(region.dir.join("env"))
        .args(["get-key-last-usage", "--key-id", &key_id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["KeyId"], key_id.as_str());
    assert_eq!(v["KeyLastUsage"]["Operation"], "ReEncrypt");
    assert!(v["TrackingStartDate"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_key_last_usage_is_authorized_as_kms_get_key_last_usage() {
    let region = DevRegion::start(port_base_for(121));
    let admin = region.admin_client();
    let app = region.app_client();
    let (key_id, _) = create_key(&admin).await;
    let err = app
        .get_key_last_usage()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDeniedException");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Root", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "AppUsage", "Effect": "Allow", "Principal": {"AWS": APP},
             "Action": "kms:GetKeyLastUsage", "Resource": "*"}
        ]
    });
    admin
        .put_key_policy()
        .key_id(&key_id)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let ok = app
        .get_key_last_usage()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert!(ok.key_last_usage().is_none());
    // The grant of one action does not let App use the key.
    let err = app
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDeniedException");
}

async fn retention(store: &raft::StoreClient) -> (u64, u64) {
    match store.query(Query::AuditRetention).await.unwrap() {
        QueryOutput::AuditRetention {
            exported_through,
            pruned_through,
        } => (exported_through, pruned_through),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_retention_are_pruned_only_after_they_were_exported() {
    // Retention of one day, and the leader's clock three days ahead: every record is expired
    // from the start. Digests every 200 ms, each followed by a pruning pass.
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("clock-offset-ms");
    std::fs::write(&offset, (3 * 86_400_000u64).to_string()).unwrap();
    let base = port_base_for(122);
    let region = DevRegion::start_with(
        base,
        &[
            "--danger-clock-offset-file",
            offset.to_str().unwrap(),
            "--audit-retention-days",
            "1",
            "--audit-digest-interval-ms",
            "200",
        ],
    );
    let kms = region.admin_client();
    for _ in 0..5 {
        kms.list_keys().send().await.unwrap();
    }
    let store = region.store().await;
    let (head, _) = store.audit_head().await.unwrap();
    let last = head.last_seq();
    assert!(last >= 5);
    // Wait for a digest over those records, then for many pruning passes.
    let mut signed = 0;
    for _ in 0..100 {
        let (_, digest) = store.audit_head().await.unwrap();
        signed = digest.map_or(0, |d| d.to_seq);
        if signed >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed >= last, "a digest covers the records");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        retention(&store).await,
        (0, 0),
        "nothing exported, nothing pruned"
    );
    assert_eq!(store.audit_records(1, 10).await.unwrap()[0].seq, 1);

    // Export the first half: only that half may go.
    let half = last / 2;
    store
        .propose(Command::MarkAuditExported { through_seq: half })
        .await
        .unwrap();
    let mut marks = (0, 0);
    for _ in 0..100 {
        marks = retention(&store).await;
        if marks.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(marks, (half, half));
    let first = store.audit_records(1, 10).await.unwrap();
    assert_eq!(
        first[0].seq,
        half + 1,
        "reads start after the pruned prefix"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        retention(&store).await.1,
        half,
        "the unexported rest is never pruned"
    );
}
