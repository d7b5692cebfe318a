//! Client-side envelope encryption (`client::envelope`) against a real dev region: the data-key
//! cache's limits measured in KMS calls (SDK counters and the region's audit trail), records
//! opened by a fresh encryptor on its own connection, and one record checked against KMS
//! `Decrypt` of its encrypted data key.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{port_base_for, DevRegion};
use client::envelope::{
    decrypt_with_data_key, record_encrypted_data_key, DataKey, EncryptionContext, EnvelopeEncryptor,
};

/// How many `event_name` calls the audit trail holds for `key_arn` from `from_seq` on.
async fn audited_calls(
    region: &DevRegion,
    from_seq: u64,
    event_name: &str,
    key_arn: &str,
) -> usize {
    region
        .audit_events_from(from_seq)
        .await
        .iter()
        .filter(|(_, e)| {
            e.event_name == event_name
                && e.error_code.is_none()
                && e.resources.iter().any(|r| r.arn == key_arn)
        })
        .count()
}

/// Records per data key, in first-seen order.
fn records_per_data_key(records: &[Vec<u8>]) -> Vec<usize> {
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in records {
        let edk = record_encrypted_data_key(r).unwrap().to_vec();
        if !counts.contains_key(&edk) {
            order.push(edk.clone());
        }
        *counts.entry(edk).or_default() += 1;
    }
    order.iter().map(|k| counts[k]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envelope_records_use_one_kms_call_per_cache_entry_and_open_anywhere() {
    let region = DevRegion::start(port_base_for(150));
    let kms = region.grpc_admin();
    let key = kms
        .create_key()
        .description("envelope")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let ctx = EncryptionContext::from_pairs([("tenant", "acme"), ("table", "orders")]);
    let from_seq = region.audit_events_from(1).await.len() as u64 + 1;

    // 25,000 1-KiB records from 5 concurrent tasks, at most 10,000 per data key: exactly three
    // GenerateDataKey calls, and every data key but the last is used exactly 10,000 times.
    let enc = EnvelopeEncryptor::builder(kms.clone())
        .max_messages(10_000)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..5u8 {
        let (enc, ctx, key_id) = (enc.clone(), ctx.clone(), key.key_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(5000);
            for i in 0..5000u32 {
                let mut pt = vec![t; 1024];
                pt[..4].copy_from_slice(&i.to_be_bytes());
                out.push(enc.encrypt(&key_id, &ctx, &pt).await.unwrap());
            }
            out
        }));
    }
    let mut records = Vec::new();
    for t in tasks {
        records.extend(t.await.unwrap());
    }
    let mut per_key = records_per_data_key(&records);
    per_key.sort_unstable();
    assert_eq!(per_key, vec![5000, 10_000, 10_000]);
    assert_eq!(enc.stats().generate_data_key_calls, 3);
    assert_eq!(
        audited_calls(&region, from_seq, "GenerateDataKey", &key.arn).await,
        3,
        "the audit trail saw exactly the SDK's three GenerateDataKey calls"
    );

    // A fresh encryptor on its own connection (no shared cache) opens all of them with one
    // KMS Decrypt per data key.
    let reader = EnvelopeEncryptor::new(region.grpc_admin());
    for (i, r) in records.iter().enumerate() {
        let pt = reader.decrypt(r, &ctx).await.unwrap();
        assert_eq!(pt.len(), 1024, "record {i}");
    }
    assert_eq!(reader.stats().decrypt_calls, 3);
    assert_eq!(reader.stats().generate_data_key_calls, 0);
    assert_eq!(
        audited_calls(&region, from_seq, "Decrypt", &key.arn).await,
        3
    );

    // Another context: KMS refuses the data key (cold cache) and the record's AAD refuses the
    // cached key (warm cache); both are InvalidCiphertextException.
    let other = EncryptionContext::from_pairs([("tenant", "evil"), ("table", "orders")]);
    let cold = EnvelopeEncryptor::new(region.grpc_admin());
    let err = cold.decrypt(&records[0], &other).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException", "{err}");
    let err = reader.decrypt(&records[0], &other).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException", "{err}");
    let mut tampered = records[0].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = reader.decrypt(&tampered, &ctx).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException", "{err}");

    // Cross-check against KMS itself: Decrypt of the record's encrypted data key, with the
    // record's context, yields the key that opens the record; without the context KMS refuses.
    let edk = record_encrypted_data_key(&records[0]).unwrap().to_vec();
    let ctx_map: HashMap<String, String> = ctx
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let out = kms
        .decrypt()
        .ciphertext_blob(edk.clone())
        .set_encryption_context(ctx_map)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_id, key.arn);
    assert_eq!(out.plaintext.len(), 32);
    let data_key_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&out.plaintext)
    };
    let mut plaintext_key = out.plaintext;
    let data_key = DataKey::take_from(&mut plaintext_key).unwrap();
    let opened = decrypt_with_data_key(&records[0], &data_key, &ctx).unwrap();
    assert_eq!(opened, reader.decrypt(&records[0], &ctx).await.unwrap());
    let err = kms.decrypt().ciphertext_blob(edk).send().await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException");

    // The data key never reached the audit trail.
    let trail = region.audit_events_from(from_seq).await;
    assert!(trail.iter().all(|(json, _)| !json.contains(&data_key_b64)));

    // max_bytes and max_age each force a new data key through the real KMS as well.
    let by_bytes = EnvelopeEncryptor::builder(kms.clone())
        .max_bytes(4 * 1024)
        .build()
        .unwrap();
    let mut small = Vec::new();
    for _ in 0..10 {
        small.push(
            by_bytes
                .encrypt(&key.key_id, &ctx, &[1u8; 1024])
                .await
                .unwrap(),
        );
    }
    assert_eq!(records_per_data_key(&small), vec![4, 4, 2]);
    assert_eq!(by_bytes.stats().generate_data_key_calls, 3);

    let by_age = EnvelopeEncryptor::builder(kms.clone())
        .max_age(Duration::from_millis(500))
        .build()
        .unwrap();
    let a = by_age.encrypt(&key.key_id, &ctx, b"a").await.unwrap();
    let b = by_age.encrypt(&key.key_id, &ctx, b"b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = by_age.encrypt(&key.key_id, &ctx, b"c").await.unwrap();
    assert_eq!(records_per_data_key(&[a, b, c]), vec![2, 1]);
    assert_eq!(by_age.stats().generate_data_key_calls, 2);

    // SDK counters and audit trail agree over the whole test: 3 + 3 + 2 data keys.
    assert_eq!(
        audited_calls(&region, from_seq, "GenerateDataKey", &key.arn).await,
        8
    );

    // A key the caller may not use: the KMS error comes through with its AWS type.
    let app = EnvelopeEncryptor::new(region.grpc_app());
    let err = app.encrypt(&key.key_id, &ctx, b"x").await.unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException", "{err}");
}
