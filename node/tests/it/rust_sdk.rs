//! The keyraft Rust SDK (`client::Client`) over gRPC with mTLS against a real three-node dev
//! region: key management, cryptography with encryption contexts, batches, the principal taken
//! from the client certificate, interoperability with the AWS JSON API, and endpoint failover.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use client::{Client, RetryPolicy};
use rcgen::ExtendedKeyUsagePurpose;

fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn new_key(kms: &Client, description: &str) -> client::types::KeyMetadata {
    kms.create_key()
        .description(description)
        .send()
        .await
        .unwrap()
        .key_metadata
        .expect("CreateKey returns KeyMetadata")
}

/// Polls `f` until it yields a value, failing if that takes longer than the front's key-cache
/// staleness bound (1 s in dev mode) plus a margin for a loaded machine.
async fn within_cache_staleness<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within the cache staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port on loopback that nothing listens on (bound, then released).
fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_aliases_and_tags_are_managed_through_the_sdk() {
    let region = DevRegion::start(port_base_for(11));
    let kms = region.grpc_admin();

    let created = kms
        .create_key()
        .description("orders")
        .tag("team", "payments")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_id = created.key_id.clone();
    assert_eq!(created.description, "orders");
    assert_eq!(created.key_state, "Enabled");
    assert!(created.enabled);
    assert_eq!(created.aws_account_id, "111122223333");
    assert_eq!(created.key_usage, "ENCRYPT_DECRYPT");
    assert_eq!(created.key_spec, "SYMMETRIC_DEFAULT");
    assert_eq!(
        created.arn,
        format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}")
    );
    assert!(created.creation_date > 1.6e9, "{}", created.creation_date);

    // Describe by id and by ARN name the same key.
    for name in [&key_id, &created.arn] {
        let d = kms.describe_key().key_id(name).send().await.unwrap();
        assert_eq!(
            d.key_metadata.unwrap().key_id,
            key_id,
            "described by {name}"
        );
    }
    let err = kms
        .describe_key()
        .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFoundException");
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    assert!(!err.is_retryable());
    let err = kms.describe_key().send().await.unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");

    // send_all follows next_marker across pages of 2 and returns every key exactly once.
    let mut created_ids = vec![key_id.clone()];
    for i in 0..4 {
        created_ids.push(new_key(&kms, &format!("k{i}")).await.key_id);
    }
    let one_page = kms.list_keys().limit(2).send().await.unwrap();
    assert_eq!(one_page.keys.len(), 2);
    assert!(one_page.truncated);
    assert!(one_page.next_marker.is_some());
    let all = kms.list_keys().limit(2).send_all().await.unwrap();
    let mut listed: Vec<_> = all.iter().map(|k| k.key_id.clone()).collect();
    listed.sort();
    let mut expected = created_ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(all.iter().all(|k| k.key_arn.ends_with(&k.key_id)));

    // Aliases: create, resolve, list (paged), repoint, delete.
    kms.create_alias()
        .alias_name("alias/orders")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let err = kms
        .create_alias()
        .alias_name("alias/orders")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AlreadyExistsException");
    let err = kms
        .create_alias()
        .alias_name("orders-without-prefix")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");
    kms.create_alias()
        .alias_name("alias/billing")
        .target_key_id(&created_ids[1])
        .send()
        .await
        .unwrap();
    let by_alias = kms
        .describe_key()
        .key_id("alias/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(by_alias.key_metadata.unwrap().key_id, key_id);
    let aliases = kms.list_aliases().limit(1).send_all().await.unwrap();
    let orders = aliases
        .iter()
        .find(|a| a.alias_name == "alias/orders")
        .expect("alias/orders listed");
    assert_eq!(orders.target_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(
        orders.alias_arn,
        "arn:aws:kms:us-east-1:111122223333:alias/orders"
    );
    assert!(aliases.iter().any(|a| a.alias_name == "alias/billing"));
    let of_key = kms.list_aliases().key_id(&key_id).send_all().await.unwrap();
    let names: Vec<_> = of_key.iter().map(|a| a.alias_name.as_str()).collect();
    assert_eq!(names, vec!["alias/orders"]);

    kms.update_alias()
        .alias_name("alias/orders")
        .target_key_id(&created_ids[2])
        .send()
        .await
        .unwrap();
    let repointed = kms
        .describe_key()
        .key_id("alias/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(repointed.key_metadata.unwrap().key_id, created_ids[2]);
    kms.delete_alias()
        .alias_name("alias/orders")
        .send()
        .await
        .unwrap();
    let err = kms
        .describe_key()
        .key_id("alias/orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFoundException");

    // Tags: the one given at creation, then add, overwrite, remove.
    let tags = kms
        .list_resource_tags()
        .key_id(&key_id)
        .send_all()
        .await
        .unwrap();
    assert_eq!(
        tags,
        vec![client::types::Tag {
            tag_key: "team".into(),
            tag_value: "payments".into()
        }]
    );
    kms.tag_resource()
        .key_id(&key_id)
        .tag("env", "prod")
        .tag("team", "ledger")
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&key_id)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = kms
        .list_resource_tags()
        .key_id(&key_id)
        .send_all()
        .await
        .unwrap();
    let tags: Vec<_> = tags
        .iter()
        .map(|t| (t.tag_key.as_str(), t.tag_value.as_str()))
        .collect();
    assert_eq!(tags, vec![("team", "ledger")]);

    // Description updates and disabling are visible to the next describe.
    kms.update_key_description()
        .key_id(&key_id)
        .description("orders v2")
        .send()
        .await
        .unwrap();
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let d = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description, "orders v2");
    assert_eq!(d.key_state, "Disabled");
    assert!(!d.enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_decrypt_re_encrypt_and_data_keys_honour_the_encryption_context() {
    let region = DevRegion::start(port_base_for(12));
    let kms = region.grpc_admin();
    let a = new_key(&kms, "a").await;
    let b = new_key(&kms, "b").await;
    let order = ctx(&[("order", "42")]);

    let secret = b"4111 1111 1111 1111".to_vec();
    let enc = kms
        .encrypt()
        .key_id(&a.key_id)
        .plaintext(secret.clone())
        .set_encryption_context(order.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(enc.key_id, a.arn);
    assert_eq!(enc.encryption_algorithm, "SYMMETRIC_DEFAULT");
    assert!(!enc.ciphertext_blob.is_empty());
    assert!(
        !enc.ciphertext_blob
            .windows(secret.len())
            .any(|w| w == secret.as_slice()),
        "the plaintext must not appear in the ciphertext"
    );

    let dec = kms
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone())
        .encryption_context("order", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext, secret);
    assert_eq!(dec.key_id, a.arn);

    // The context is bound to the ciphertext: a different, extra or missing one fails.
    for wrong in [
        ctx(&[("order", "43")]),
        ctx(&[("order", "42"), ("extra", "x")]),
        HashMap::new(),
    ] {
        let err = kms
            .decrypt()
            .ciphertext_blob(enc.ciphertext_blob.clone())
            .set_encryption_context(wrong.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidCiphertextException", "{wrong:?}");
        assert!(!err.is_retryable());
    }
    // A flipped byte is detected, as is naming the wrong key.
    let mut tampered = enc.ciphertext_blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = kms
        .decrypt()
        .ciphertext_blob(tampered)
        .set_encryption_context(order.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException");
    let err = kms
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone())
        .set_encryption_context(order.clone())
        .key_id(&b.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "IncorrectKeyException");

    // ReEncrypt moves the ciphertext to key b and a new context without exposing plaintext.
    let re = kms
        .re_encrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone())
        .set_source_encryption_context(order.clone())
        .destination_key_id(&b.key_id)
        .destination_encryption_context("order", "42-archived")
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_id, a.arn);
    assert_eq!(re.key_id, b.arn);
    let dec = kms
        .decrypt()
        .ciphertext_blob(re.ciphertext_blob.clone())
        .encryption_context("order", "42-archived")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext, secret);
    assert_eq!(dec.key_id, b.arn);
    let err = kms
        .re_encrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone())
        .destination_key_id(&b.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException");

    // GenerateDataKey: the blob decrypts (with the same context) to the plaintext returned.
    let dk = kms
        .generate_data_key()
        .key_id(&a.key_id)
        .key_spec("AES_256")
        .encryption_context("table", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(dk.key_id, a.arn);
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.clone())
        .encryption_context("table", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, dk.plaintext);
    let small = kms
        .generate_data_key()
        .key_id(&a.key_id)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert_eq!(small.plaintext.len(), 16);
    assert_ne!(small.plaintext, dk.plaintext[..16]);

    let wp = kms
        .generate_data_key_without_plaintext()
        .key_id(&b.key_id)
        .key_spec("AES_128")
        .encryption_context("table", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(wp.key_id, b.arn);
    let back = kms
        .decrypt()
        .ciphertext_blob(wp.ciphertext_blob)
        .encryption_context("table", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.len(), 16);

    // GenerateRandom: the requested length, fresh bytes each call, AWS's range check.
    let r1 = kms
        .generate_random()
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    let r2 = kms
        .generate_random()
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    assert_eq!(r1.plaintext.len(), 64);
    assert_ne!(r1.plaintext, r2.plaintext);
    for n in [0, 1025] {
        let err = kms
            .generate_random()
            .number_of_bytes(n)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "ValidationException", "{n} bytes");
    }

    // A disabled key refuses to encrypt, and works again once re-enabled. Crypto operations
    // read key state through the front's cache, so a change is promised within the cache's
    // staleness bound (1 s), not at once.
    kms.disable_key().key_id(&a.key_id).send().await.unwrap();
    let err = within_cache_staleness("Encrypt under a disabled key fails", || async {
        kms.encrypt()
            .key_id(&a.key_id)
            .plaintext(b"x".to_vec())
            .send()
            .await
            .err()
    })
    .await;
    assert_eq!(err.error_type(), "DisabledException");
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition));
    kms.enable_key().key_id(&a.key_id).send().await.unwrap();
    let dec = within_cache_staleness("Decrypt works again once re-enabled", || async {
        kms.decrypt()
            .ciphertext_blob(enc.ciphertext_blob.clone())
            .set_encryption_context(order.clone())
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(dec.plaintext, secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_return_one_result_per_item_in_order_with_per_item_errors() {
    let region = DevRegion::start(port_base_for(13));
    let kms = region.grpc_admin();
    let key = new_key(&kms, "batch").await;
    kms.create_alias()
        .alias_name("alias/batch")
        .target_key_id(&key.key_id)
        .send()
        .await
        .unwrap();

    let results = kms
        .batch_encrypt()
        .encrypt(&key.key_id, b"zero".to_vec(), ctx(&[("i", "0")]))
        .encrypt("alias/does-not-exist", b"one".to_vec(), HashMap::new())
        .encrypt("alias/batch", b"two".to_vec(), ctx(&[("i", "2")]))
        .encrypt("", b"three".to_vec(), HashMap::new())
        .send()
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.error_type(), "NotFoundException");
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    assert!(!err.is_retryable());
    assert_eq!(
        results[3].as_ref().unwrap_err().error_type(),
        "ValidationException"
    );
    let zero = results[0].as_ref().unwrap().ciphertext_blob.clone();
    let two = results[2].as_ref().unwrap().ciphertext_blob.clone();
    assert_eq!(results[2].as_ref().unwrap().key_id, key.arn);

    let mut corrupt = zero.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x80;
    let results = kms
        .batch_decrypt()
        .decrypt(two.clone(), ctx(&[("i", "2")]))
        .decrypt(zero.clone(), ctx(&[("i", "wrong")]))
        .decrypt(corrupt, ctx(&[("i", "0")]))
        .decrypt(zero.clone(), ctx(&[("i", "0")]))
        .send()
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().plaintext, b"two");
    for i in [1, 2] {
        assert_eq!(
            results[i].as_ref().unwrap_err().error_type(),
            "InvalidCiphertextException",
            "item {i}"
        );
    }
    assert_eq!(results[3].as_ref().unwrap().plaintext, b"zero");
    assert_eq!(results[3].as_ref().unwrap().key_id, key.arn);

    // Batch items decrypt with the single-call API too: same ciphertext format.
    let single = kms
        .decrypt()
        .ciphertext_blob(zero)
        .encryption_context("i", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(single.plaintext, b"zero");

    // An empty batch is refused as a whole.
    let err = kms.batch_encrypt().send().await.unwrap_err();
    assert_eq!(err.error_type(), "ValidationException");
    let err = kms.batch_decrypt().send().await.unwrap_err();
    assert_eq!(err.error_type(), "ValidationException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_principal_is_the_client_certificate_and_unknown_certificates_are_refused() {
    let region = DevRegion::start(port_base_for(14));
    let kms = region.grpc_admin();
    let app = region.grpc_app();
    let key = new_key(&kms, "owned by the admin").await;
    let enc = kms
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(b"admin data".to_vec())
        .send()
        .await
        .unwrap();

    // The app certificate names an identity of the same account that is not an admin.
    let err = app.create_key().send().await.unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied));
    assert!(!err.is_retryable());
    assert!(
        err.message().contains(&region.var("KMS_ALT_PRINCIPAL_ARN")),
        "the denial names the certificate's principal: {}",
        err.message()
    );
    let err = app
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(b"x".to_vec())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException");
    let err = app
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException");
    let err = app.list_keys().send().await.unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException");
    let err = app
        .describe_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException");

    // The SDK will not even try https without a client certificate.
    let err = Client::builder()
        .endpoint(region.var("KMS_GRPC_ENDPOINT"))
        .ca_bundle_file(region.var("KMS_CA_BUNDLE"))
        .build()
        .unwrap_err();
    assert_eq!(err.error_type(), "ConfigError");

    // ... and the server refuses a TLS connection that presents none (raw tonic channel).
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(
            std::fs::read(region.var("KMS_CA_BUNDLE")).unwrap(),
        ),
    );
    let refused = match tonic::transport::Endpoint::from_shared(region.var("KMS_GRPC_ENDPOINT"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => client::proto::kms_client::KmsClient::new(channel)
            .generate_random(client::types::GenerateRandomRequest {
                number_of_bytes: Some(8),
                custom_key_store_id: None,
            })
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a connection without a client certificate must be refused"
    );

    // A well-formed client certificate for the admin's ARN, but from another CA.
    let rogue_ca = node::certs::DevCa::generate("not the region's CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rogue = node::certs::write_pair(
        dir.path(),
        "rogue",
        rogue_ca
            .issue_client(&region.var("KMS_PRINCIPAL_ARN"))
            .unwrap(),
    )
    .unwrap();
    let rogue = region
        .grpc_builder(rogue.cert.to_str().unwrap(), rogue.key.to_str().unwrap())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = rogue
        .generate_random()
        .number_of_bytes(8)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "TransportError", "{err}");
    let err = rogue.create_key().send().await.unwrap_err();
    assert_eq!(err.error_type(), "TransportError", "{err}");
    // Nothing the rogue tried took effect.
    let keys = kms.list_keys().send_all().await.unwrap();
    assert_eq!(keys.len(), 1);
}

/// Adds a CA the test holds to a stopped region's trust bundle (`ca.pem`), so that the test
/// can issue client certificates the region accepts: the dev CA's own key is never written to
/// disk. The region's own certificates are left as they are.
fn trust_a_test_held_ca(dir: &std::path::Path) -> node::certs::DevCa {
    let ca = node::certs::DevCa::generate("test-held CA").unwrap();
    let path = dir.join("ca.pem");
    let mut bundle = std::fs::read_to_string(&path).unwrap();
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(&ca.cert_pem());
    std::fs::write(&path, bundle).unwrap();
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_trusted_ca_without_client_auth_is_unrecognized() {
    let mut region = DevRegion::start(port_base_for(15));
    region.stop();
    let ca = trust_a_test_held_ca(&region.dir);
    region.launch();

    let kms = region.grpc_admin();
    let dir = tempfile::tempdir().unwrap();
    let admin_arn = region.var("KMS_PRINCIPAL_ARN");
    let issue = |name: &str, ekus| {
        let pair = ca.issue_client_with_eku(&admin_arn, ekus).unwrap();
        let files = node::certs::write_pair(dir.path(), name, pair).unwrap();
        region
            .grpc_builder(files.cert.to_str().unwrap(), files.key.to_str().unwrap())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap()
    };

    // A proper client certificate from the test's CA works: the region trusts that CA.
    let from_test_ca = issue("client-auth", vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let key = new_key(&from_test_ca, "made with the test CA's certificate").await;

    // No EKU extension at all passes the TLS layer; the gRPC adapter insists on clientAuth.
    let no_eku = issue("no-eku", vec![]);
    let err = no_eku.create_key().send().await.unwrap_err();
    assert_eq!(err.error_type(), "UnrecognizedClientException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated));
    assert!(err.message().contains("clientAuth"), "{}", err.message());

    // A certificate restricted to serverAuth is refused already by the TLS layer.
    let server_only = issue("server-only", vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let err = server_only.create_key().send().await.unwrap_err();
    assert_eq!(err.error_type(), "TransportError", "{err}");

    let keys = kms.list_keys().send_all().await.unwrap();
    assert_eq!(
        keys.len(),
        1,
        "only the properly certified caller made a key"
    );
    assert_eq!(keys[0].key_id, key.key_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertexts_cross_between_grpc_and_the_aws_json_api() {
    let region = DevRegion::start(port_base_for(16));
    let grpc = region.grpc_admin();
    let aws = region.admin_client();

    // A key made over gRPC, aliased over gRPC, used over JSON.
    let key = new_key(&grpc, "shared").await;
    grpc.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&key.key_id)
        .send()
        .await
        .unwrap();

    let from_grpc = grpc
        .encrypt()
        .key_id("alias/shared")
        .plaintext(b"made over gRPC".to_vec())
        .encryption_context("dir", "grpc->json")
        .send()
        .await
        .unwrap();
    let out = aws
        .decrypt()
        .ciphertext_blob(Blob::new(from_grpc.ciphertext_blob.clone()))
        .encryption_context("dir", "grpc->json")
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"made over gRPC");
    assert_eq!(out.key_id(), Some(key.arn.as_str()));
    let err = aws
        .decrypt()
        .ciphertext_blob(Blob::new(from_grpc.ciphertext_blob))
        .encryption_context("dir", "other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidCiphertextException");

    // A key made over JSON, used over gRPC.
    let json_key = aws
        .create_key()
        .description("made over JSON")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let d = grpc
        .describe_key()
        .key_id(&json_key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description, "made over JSON");
    let from_json = aws
        .encrypt()
        .key_id(&json_key)
        .plaintext(Blob::new("made over JSON"))
        .encryption_context("dir", "json->grpc")
        .send()
        .await
        .unwrap();
    let out = grpc
        .decrypt()
        .ciphertext_blob(from_json.ciphertext_blob().unwrap().as_ref().to_vec())
        .encryption_context("dir", "json->grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext, b"made over JSON");
    assert_eq!(out.key_id, d.arn);

    // Data keys too: generated over JSON, unwrapped over gRPC.
    let dk = aws
        .generate_data_key()
        .key_id("alias/shared")
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let out = grpc
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().as_ref().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext, dk.plaintext().unwrap().as_ref());

    // ReEncrypt over gRPC of a JSON ciphertext, decrypted over JSON.
    let re = grpc
        .re_encrypt()
        .ciphertext_blob(from_json.ciphertext_blob().unwrap().as_ref().to_vec())
        .source_encryption_context("dir", "json->grpc")
        .destination_key_id("alias/shared")
        .send()
        .await
        .unwrap();
    let out = aws
        .decrypt()
        .ciphertext_blob(Blob::new(re.ciphertext_blob))
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"made over JSON");

    // Both APIs see the same key set.
    let mut over_grpc: Vec<_> = grpc
        .list_keys()
        .send_all()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    let mut over_json: Vec<_> = aws
        .list_keys()
        .send()
        .await
        .unwrap()
        .keys()
        .iter()
        .map(|k| k.key_id().unwrap().to_string())
        .collect();
    over_grpc.sort();
    over_json.sort();
    assert_eq!(over_grpc, over_json);
    assert_eq!(over_grpc.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_from_a_dead_endpoint_to_a_live_one() {
    let region = DevRegion::start(port_base_for(17));
    let dead = format!("https://127.0.0.1:{}", unused_port());
    let live = region.var("KMS_GRPC_ENDPOINT");
    let kms = region
        .grpc_builder(
            &region.var("KMS_CLIENT_CERT"),
            &region.var("KMS_CLIENT_KEY"),
        )
        .endpoints([dead.clone(), live.clone()])
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(kms.endpoints(), vec![dead.as_str(), live.as_str()]);

    let started = std::time::Instant::now();
    let key = new_key(&kms, "failover").await;
    let enc = kms
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(b"still served".to_vec())
        .send()
        .await
        .unwrap();
    let dec = kms
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob)
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext, b"still served");
    // Failing over to an untried front does not sleep a backoff.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // With only the dead endpoint the call fails as a transport error, after its retries.
    let only_dead = region
        .grpc_builder(
            &region.var("KMS_CLIENT_CERT"),
            &region.var("KMS_CLIENT_KEY"),
        )
        .endpoints([dead])
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    let err = only_dead
        .generate_random()
        .number_of_bytes(8)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "TransportError", "{err}");
    assert!(err.is_retryable());
}
