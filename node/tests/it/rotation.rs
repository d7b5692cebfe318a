//! Automatic key rotation end to end with the AWS SDK for Rust, against a real dev region
//! whose storage nodes follow a DANGER clock-offset file: the leader's scheduler rotates on
//! schedule, once per period, also across a leader change; every ciphertext keeps
//! decrypting and new ones use the newest material.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::RotationType;

const DAY_MS: i64 = 86_400_000;

fn set_offset(path: &Path, ms: i64) {
    std::fs::write(path, ms.to_string()).unwrap();
}

async fn rotations(kms: &aws_sdk_kms::Client, key_id: &str) -> Vec<RotationType> {
    kms.list_key_rotations()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .rotations()
        .iter()
        .filter_map(|r| r.rotation_type().cloned())
        .collect()
}

/// Polls ListKeyRotations until it shows `n` rotations (panics after 20 s).
async fn wait_for_rotations(kms: &aws_sdk_kms::Client, key_id: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = rotations(kms, key_id).await;
        if got.len() >= n {
            assert_eq!(got.len(), n, "more rotations than periods: {got:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {n} rotations, have {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn encrypt(kms: &aws_sdk_kms::Client, key_id: &str, text: &str) -> Vec<u8> {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(text))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec()
}

async fn assert_decrypts(kms: &aws_sdk_kms::Client, blob: &[u8], text: &str) {
    let out = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), text.as_bytes());
}

fn material_version(blob: &[u8]) -> u32 {
    keystore::ciphertext::peek_header(blob)
        .unwrap()
        .material_version
}

async fn new_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string()
}

#[tokio::test]
async fn automatic_rotation_happens_on_schedule_once_per_period() {
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("clock-offset-ms");
    let region = DevRegion::start_with(
        port_base_for(40),
        &["--danger-clock-offset-file", offset.to_str().unwrap()],
    );
    let kms = region.admin_client();
    let key = new_key(&kms).await;
    let v1 = encrypt(&kms, &key, "before any rotation").await;
    assert_eq!(material_version(&v1), 1);

    let enabled_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    kms.enable_key_rotation()
        .key_id(&key)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(90));
    let next = status.next_rotation_date().unwrap().secs();
    assert!((next - (enabled_at + 90 * 86_400)).abs() < 60, "{next}");
    assert!(status.on_demand_rotation_start_date().is_none());

    // 89 days on: nothing yet.
    set_offset(&offset, 89 * DAY_MS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(rotations(&kms, &key).await.is_empty());

    // Past 90 days: one automatic rotation; new ciphertexts use version 2.
    set_offset(&offset, 90 * DAY_MS + 60_000);
    wait_for_rotations(&kms, &key, 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rotations(&kms, &key).await, vec![RotationType::Automatic]);
    let v2 = encrypt(&kms, &key, "after one rotation").await;
    assert_eq!(material_version(&v2), 2);

    // The next period needs material a front prepared after the first rotation consumed
    // the one stored by EnableKeyRotation.
    set_offset(&offset, 180 * DAY_MS + 120_000);
    wait_for_rotations(&kms, &key, 2).await;
    let v3 = encrypt(&kms, &key, "after two rotations").await;
    assert_eq!(material_version(&v3), 3);
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let next = status.next_rotation_date().unwrap().secs();
    assert!(
        (next - (enabled_at + 270 * 86_400)).abs() < 600,
        "the schedule stays anchored to the enable date: {next}"
    );

    for (blob, text) in [
        (&v1, "before any rotation"),
        (&v2, "after one rotation"),
        (&v3, "after two rotations"),
    ] {
        assert_decrypts(&kms, blob, text).await;
    }

    // Disabled rotation does not rotate, however much time passes.
    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    set_offset(&offset, 400 * DAY_MS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rotations(&kms, &key).await.len(), 2);
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());
    assert!(status.next_rotation_date().is_none());
}

#[tokio::test]
async fn automatic_rotation_happens_once_per_period_across_a_leader_change() {
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("clock-offset-ms");
    let region = DevRegion::start_with(
        port_base_for(41),
        &["--danger-clock-offset-file", offset.to_str().unwrap()],
    );
    let kms = region.admin_client();
    let key = new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&key)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let v1 = encrypt(&kms, &key, "one").await;

    set_offset(&offset, 90 * DAY_MS + 60_000);
    wait_for_rotations(&kms, &key, 1).await;
    let v2 = encrypt(&kms, &key, "two").await;

    // Kill the leader between periods; a new one takes over the schedule from replicated
    // state and neither repeats the first rotation nor skips the second.
    let leader = region.leader_id().await;
    region.kill_node(leader as u32);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let new_leader = region.leader_id().await;
        if new_leader != leader {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rotations(&kms, &key).await.len(), 1);

    set_offset(&offset, 180 * DAY_MS + 120_000);
    wait_for_rotations(&kms, &key, 2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        rotations(&kms, &key).await,
        vec![RotationType::Automatic, RotationType::Automatic]
    );
    let v3 = encrypt(&kms, &key, "three").await;
    assert_eq!(material_version(&v3), 3);
    for (blob, text) in [(&v1, "one"), (&v2, "two"), (&v3, "three")] {
        assert_decrypts(&kms, blob, text).await;
    }
}
