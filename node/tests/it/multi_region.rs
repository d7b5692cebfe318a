//! Multi-region keys end to end with the AWS SDK for Rust against `keyraft dev --regions`:
//! two region clusters (3 storage nodes + a front each), material replicated between them
//! by the fronts' replicators over mTLS, wrapped to the target region's transport key.

use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{IncludeKeyMaterial, KeyMaterialState, MultiRegionKeyType, Tag};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

use crate::common::{port_base_for, DevRegion};

const A: &str = "us-east-1";
const B: &str = "us-west-2";

/// An admin client for the region whose endpoint and name are in `endpoint_var` /
/// `region_var` of the env file.
fn client(dev: &DevRegion, endpoint_var: &str, region_var: &str) -> aws_sdk_kms::Client {
    let ca = std::fs::read(dev.var("AWS_CA_BUNDLE")).unwrap();
    let tls = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(ca))
        .build()
        .unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https();
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(dev.var(region_var)))
        .endpoint_url(dev.var(endpoint_var))
        .credentials_provider(Credentials::new(
            dev.var("AWS_ACCESS_KEY_ID"),
            dev.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "keyraft-test",
        ))
        .http_client(http)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Polls until `f` answers `Some` (panics with `what` after `within`).
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn key_state(kms: &aws_sdk_kms::Client, key_id: &str) -> Option<String> {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .ok()?
        .key_metadata()
        .and_then(|m| m.key_state().map(|s| s.as_str().to_string()))
}

async fn decrypts(kms: &aws_sdk_kms::Client, blob: &[u8]) -> Option<Vec<u8>> {
    let out = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .send()
        .await
        .ok()?;
    out.plaintext().map(|p| p.as_ref().to_vec())
}

async fn encrypt(kms: &aws_sdk_kms::Client, key_id: &str, text: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(text.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn multi_region_keys_replicate_rotate_and_move_their_primary_between_two_regions() {
    // Both regions' storage nodes follow one DANGER clock-offset file, so the end of the
    // test can move past a deletion window.
    let clock = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(clock.path(), "0").unwrap();
    let dev = DevRegion::start_with(
        port_base_for(160),
        &[
            "--regions",
            "us-east-1,us-west-2",
            "--danger-clock-offset-file",
            clock.path().to_str().unwrap(),
        ],
    );
    assert_eq!(dev.var("KMS_REGION_B"), B);
    let a = client(&dev, "KMS_ENDPOINT", "AWS_DEFAULT_REGION");
    let b = client(&dev, "KMS_ENDPOINT_B", "KMS_REGION_B");

    // Create the primary in A: an mrk- id, PRIMARY with no replicas yet.
    let created = a
        .create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let key_id = meta.key_id().to_string();
    assert!(key_id.starts_with("mrk-") && key_id.len() == 36, "{key_id}");
    assert_eq!(meta.multi_region(), Some(true));
    let cfg = meta.multi_region_configuration().unwrap();
    assert_eq!(
        cfg.multi_region_key_type(),
        Some(&MultiRegionKeyType::Primary)
    );
    assert_eq!(cfg.primary_key().unwrap().region(), Some(A));

    // Bad inputs, with AWS's error types.
    let own = a
        .replicate_key()
        .key_id(&key_id)
        .replica_region(A)
        .send()
        .await;
    assert_eq!(
        own.unwrap_err().into_service_error().meta().code(),
        Some("ValidationException")
    );
    let unknown = a
        .replicate_key()
        .key_id(&key_id)
        .replica_region("eu-west-3")
        .send()
        .await;
    assert!(unknown
        .unwrap_err()
        .into_service_error()
        .is_unsupported_operation_exception());
    let single = a.create_key().send().await.unwrap();
    let not_mr = a
        .replicate_key()
        .key_id(single.key_metadata().unwrap().key_id())
        .replica_region(B)
        .send()
        .await;
    assert!(not_mr
        .unwrap_err()
        .into_service_error()
        .is_unsupported_operation_exception());

    // Replicate into B: answered Creating, then Enabled once the material arrived.
    let rep = a
        .replicate_key()
        .key_id(&key_id)
        .replica_region(B)
        .description("replica in b")
        .tags(
            Tag::builder()
                .tag_key("site")
                .tag_value("b")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let rm = rep.replica_key_metadata().unwrap();
    assert_eq!(rm.key_id(), key_id);
    assert_eq!(
        rm.arn().unwrap(),
        format!("arn:aws:kms:{B}:111122223333:key/{key_id}")
    );
    assert_eq!(rm.key_state().unwrap().as_str(), "Creating");
    assert_eq!(rep.replica_tags().len(), 1);
    assert!(rep.replica_policy().is_some());
    let again = a
        .replicate_key()
        .key_id(&key_id)
        .replica_region(B)
        .send()
        .await;
    assert!(again
        .unwrap_err()
        .into_service_error()
        .is_already_exists_exception());

    eventually(
        Duration::from_secs(10),
        "the replica to be Enabled",
        || async { (key_state(&b, &key_id).await.as_deref() == Some("Enabled")).then_some(()) },
    )
    .await;
    let rd = b.describe_key().key_id(&key_id).send().await.unwrap();
    let rmeta = rd.key_metadata().unwrap();
    assert_eq!(rmeta.description(), Some("replica in b"));
    let rcfg = rmeta.multi_region_configuration().unwrap();
    assert_eq!(
        rcfg.multi_region_key_type(),
        Some(&MultiRegionKeyType::Replica)
    );
    assert_eq!(rcfg.primary_key().unwrap().region(), Some(A));
    assert_eq!(rcfg.replica_keys()[0].region(), Some(B));
    // The primary lists the replica too.
    let pd = a.describe_key().key_id(&key_id).send().await.unwrap();
    let pcfg = pd
        .key_metadata()
        .unwrap()
        .multi_region_configuration()
        .unwrap()
        .clone();
    assert_eq!(pcfg.replica_keys().len(), 1);
    assert_eq!(pcfg.replica_keys()[0].region(), Some(B));

    // Encrypt in A, decrypt in B, and the other way round.
    let blob_a = encrypt(&a, &key_id, b"made in a").await;
    assert_eq!(decrypts(&b, &blob_a).await.unwrap(), b"made in a");
    let blob_b = encrypt(&b, &key_id, b"made in b").await;
    assert_eq!(decrypts(&a, &blob_b).await.unwrap(), b"made in b");

    // Rotation on the primary: the replica decrypts new ciphertexts within 10 s, old ones
    // still.
    a.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the rotation on A", || async {
        let r = a.list_key_rotations().key_id(&key_id).send().await.ok()?;
        (!r.rotations().is_empty()).then_some(())
    })
    .await;
    let blob_v2 = encrypt(&a, &key_id, b"after rotation").await;
    let started = Instant::now();
    eventually(
        Duration::from_secs(10),
        "B to decrypt a post-rotation ciphertext",
        || async {
            decrypts(&b, &blob_v2)
                .await
                .filter(|p| p == b"after rotation")
        },
    )
    .await;
    eprintln!(
        "replica decrypted the rotated ciphertext after {:?}",
        started.elapsed()
    );
    assert_eq!(decrypts(&b, &blob_a).await.unwrap(), b"made in a");
    // A replica does not rotate itself.
    let own_rotation = b.rotate_key_on_demand().key_id(&key_id).send().await;
    assert!(own_rotation
        .unwrap_err()
        .into_service_error()
        .is_unsupported_operation_exception());

    // Both regions list the same two material versions, the rotated one current, through
    // ListKeyRotations with IncludeKeyMaterial=ALL_KEY_MATERIAL (the replica records no
    // rotation of its own, so ROTATIONS_ONLY lists nothing there): what jepsen-lite's
    // replica-convergence checker compares.
    let listed = |kms: aws_sdk_kms::Client, key_id: String| async move {
        let out = kms
            .list_key_rotations()
            .key_id(key_id)
            .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
            .send()
            .await
            .unwrap();
        out.rotations()
            .iter()
            .map(|r| {
                (
                    r.key_material_id().unwrap().to_string(),
                    r.key_material_state().unwrap().clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let in_a = listed(a.clone(), key_id.clone()).await;
    assert_eq!(
        in_a,
        vec![
            (format!("{:064x}", 1), KeyMaterialState::NonCurrent),
            (format!("{:064x}", 2), KeyMaterialState::Current),
        ]
    );
    assert_eq!(listed(b.clone(), key_id.clone()).await, in_a);
    let only_rotations = b.list_key_rotations().key_id(&key_id).send().await.unwrap();
    assert!(only_rotations.rotations().is_empty());

    // UpdatePrimaryRegion: B becomes primary, A a replica; both keep working.
    a.update_primary_region()
        .key_id(&key_id)
        .primary_region(B)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "B to be primary and A a replica",
        || async {
            let kb = b.describe_key().key_id(&key_id).send().await.ok()?;
            let ka = a.describe_key().key_id(&key_id).send().await.ok()?;
            let tb = kb
                .key_metadata()?
                .multi_region_configuration()?
                .multi_region_key_type()?
                .clone();
            let ta = ka
                .key_metadata()?
                .multi_region_configuration()?
                .multi_region_key_type()?
                .clone();
            let sa = ka.key_metadata()?.key_state()?.as_str().to_string();
            (tb == MultiRegionKeyType::Primary
                && ta == MultiRegionKeyType::Replica
                && sa == "Enabled")
                .then_some(())
        },
    )
    .await;
    let kb = b.describe_key().key_id(&key_id).send().await.unwrap();
    let cb = kb
        .key_metadata()
        .unwrap()
        .multi_region_configuration()
        .unwrap();
    assert_eq!(cb.primary_key().unwrap().region(), Some(B));
    assert_eq!(cb.replica_keys()[0].region(), Some(A));
    let blob_b2 = encrypt(&b, &key_id, b"b is primary").await;
    assert_eq!(decrypts(&a, &blob_b2).await.unwrap(), b"b is primary");
    let blob_a2 = encrypt(&a, &key_id, b"a is replica").await;
    assert_eq!(decrypts(&b, &blob_a2).await.unwrap(), b"a is replica");
    assert_eq!(decrypts(&a, &blob_v2).await.unwrap(), b"after rotation");
    // Now only B may rotate; A refuses.
    let a_rot = a.rotate_key_on_demand().key_id(&key_id).send().await;
    assert!(a_rot
        .unwrap_err()
        .into_service_error()
        .is_unsupported_operation_exception());
    // The same over gRPC (Rust SDK): ReplicateKey, then DescribeKey's configuration in B.
    let grpc = |endpoint: String| {
        client::Client::builder()
            .endpoint(endpoint)
            .ca_bundle_file(dev.var("KMS_CA_BUNDLE"))
            .client_cert_file(dev.var("KMS_CLIENT_CERT"))
            .client_key_file(dev.var("KMS_CLIENT_KEY"))
            .build()
            .unwrap()
    };
    let ga = grpc(dev.var("KMS_GRPC_ENDPOINT"));
    let gb = grpc(dev.var("KMS_GRPC_ENDPOINT_B"));
    let gkey = ga
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let grep = ga
        .replicate_key()
        .key_id(&gkey)
        .replica_region(B)
        .description("via grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grep.replica_key_metadata.unwrap().key_state, "Creating");
    let gmeta = eventually(Duration::from_secs(10), "the gRPC replica", || async {
        let m = gb
            .describe_key()
            .key_id(&gkey)
            .send()
            .await
            .ok()?
            .key_metadata?;
        (m.key_state == "Enabled").then_some(m)
    })
    .await;
    assert_eq!(gmeta.description, "via grpc");
    let gcfg = gmeta.multi_region_configuration.unwrap();
    assert_eq!(gcfg.multi_region_key_type, "REPLICA");
    assert_eq!(gcfg.primary_key.unwrap().region, A);

    // Deleting the primary (now B) waits for its replica (A): PendingReplicaDeletion until
    // A's replica is deleted in A's region, then PendingDeletion with its own window.
    let out = b
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_state().unwrap().as_str(), "PendingReplicaDeletion");
    a.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    std::fs::write(clock.path(), (8 * 86_400_000u64).to_string()).unwrap();
    eventually(
        Duration::from_secs(20),
        "A's replica to be deleted",
        || async {
            let r = a.describe_key().key_id(&key_id).send().await;
            match r {
                Err(e) => e
                    .into_service_error()
                    .is_not_found_exception()
                    .then_some(()),
                Ok(_) => None,
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "B to learn its replica is gone and start its own window",
        || async {
            (key_state(&b, &key_id).await.as_deref() == Some("PendingDeletion")).then_some(())
        },
    )
    .await;
    let kb = b.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(kb.key_metadata().unwrap().deletion_date().is_some());

    // kmsctl (gRPC, region A from the env file): create, replicate, move the primary.
    let kmsctl = crate::common::Kmsctl::new(&dev);
    let created = kmsctl.json(&["create-key", "--multi-region", "--description", "cli"]);
    let cli_key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cli_key.starts_with("mrk-"), "{cli_key}");
    let replicated = kmsctl.json(&[
        "replicate-key",
        "--key-id",
        &cli_key,
        "--replica-region",
        B,
        "--description",
        "cli replica",
        "--tags",
        "TagKey=team,TagValue=payments",
    ]);
    let replica = &replicated["ReplicaKeyMetadata"];
    assert_eq!(replica["KeyId"], cli_key.as_str());
    assert_eq!(
        replica["Arn"],
        format!("arn:aws:kms:{B}:111122223333:key/{cli_key}")
    );
    assert_eq!(replicated["ReplicaTags"][0]["TagValue"], "payments");
    assert!(replicated["ReplicaPolicy"]
        .as_str()
        .unwrap()
        .contains("kms:*"));
    eventually(
        Duration::from_secs(20),
        "the kmsctl replica in B",
        || async { (key_state(&b, &cli_key).await.as_deref() == Some("Enabled")).then_some(()) },
    )
    .await;
    let sealed = encrypt(&a, &cli_key, b"via kmsctl").await;
    assert_eq!(
        decrypts(&b, &sealed).await.as_deref(),
        Some(&b"via kmsctl"[..])
    );
    let move_primary_to_b = || {
        kmsctl
            .command()
            .args(["update-primary-region", "--key-id", &cli_key])
            .args(["--primary-region", B])
            .output()
            .unwrap()
    };
    // Like the aws CLI: no output on success.
    let out = move_primary_to_b();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    eventually(Duration::from_secs(20), "B to become primary", || async {
        let d = b.describe_key().key_id(&cli_key).send().await.ok()?;
        let cfg = d.key_metadata()?.multi_region_configuration()?.clone();
        (cfg.multi_region_key_type() == Some(&MultiRegionKeyType::Primary)).then_some(())
    })
    .await;
    // A second move from A (now a replica, or still Updating) is refused with AWS's error.
    let out = move_primary_to_b();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("when calling the UpdatePrimaryRegion operation"),
        "an AWS CLI style error: {stderr}"
    );
}
