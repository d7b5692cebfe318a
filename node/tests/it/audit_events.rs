//! The audit trail from the outside, against a real three-node dev region: every call on
//! either API (allowed or denied) leaves exactly one CloudTrail-shaped event with the right
//! fields, and no plaintext, data key, shared secret, access-key secret or private key of any
//! call appears in any audit record or in any file the region writes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::operation::RequestId as _;
use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;

const ADMIN: &str = "arn:aws:iam::111122223333:role/Admin";
const APP: &str = "arn:aws:iam::111122223333:role/App";

/// (eventName, userIdentity.arn, errorCode, requestID if the test knows it).
type Expected = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<String>,
);

#[tokio::test(flavor = "multi_thread")]
async fn every_call_on_either_api_leaves_exactly_one_event() {
    let base = port_base_for(100);
    let region = DevRegion::start(base);
    let admin = region.admin_client();
    let app = region.sdk_client_with_retries(
        &region.var("KMS_ALT_ACCESS_KEY_ID"),
        &region.var("KMS_ALT_SECRET_ACCESS_KEY"),
        aws_sdk_kms::config::retry::RetryConfig::disabled(),
    );
    let before = region.audit_events_from(1).await.len();
    let mut want: Vec<Expected> = Vec::new();
    let id = |s: Option<&str>| Some(s.expect("the JSON API returns a request id").to_string());

    // ---- AWS JSON API (aws-sdk-kms, SigV4) ----
    let created = admin.create_key().send().await.unwrap();
    want.push(("CreateKey", ADMIN, None, id(created.request_id())));
    let key = created.key_metadata.unwrap();
    let enc = admin
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"audit events".to_vec()))
        .encryption_context("case", "events")
        .send()
        .await
        .unwrap();
    want.push(("Encrypt", ADMIN, None, id(enc.request_id())));
    let dec = admin
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.clone().unwrap())
        .encryption_context("case", "events")
        .send()
        .await
        .unwrap();
    want.push(("Decrypt", ADMIN, None, id(dec.request_id())));
    let dk = admin
        .generate_data_key()
        .key_id(key.key_id())
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    want.push(("GenerateDataKey", ADMIN, None, id(dk.request_id())));
    let denied = app
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"nope".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&denied), "AccessDeniedException");
    let denied_id = denied.as_service_error().and_then(|e| e.request_id());
    want.push(("Encrypt", APP, Some("AccessDeniedException"), id(denied_id)));
    let signing = admin
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    want.push(("CreateKey", ADMIN, None, id(signing.request_id())));
    let signing = signing.key_metadata.unwrap();
    let signed = admin
        .sign()
        .key_id(signing.key_id())
        .message(Blob::new(b"audit sign".to_vec()))
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    want.push(("Sign", ADMIN, None, id(signed.request_id())));
    let grant = admin
        .create_grant()
        .key_id(key.key_id())
        .grantee_principal(APP)
        .operations(aws_sdk_kms::types::GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    want.push(("CreateGrant", ADMIN, None, id(grant.request_id())));
    let policy = admin
        .get_key_policy()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap();
    want.push(("GetKeyPolicy", ADMIN, None, id(policy.request_id())));
    let put = admin
        .put_key_policy()
        .key_id(key.key_id())
        .policy(policy.policy.clone().unwrap())
        .send()
        .await
        .unwrap();
    want.push(("PutKeyPolicy", ADMIN, None, id(put.request_id())));
    let denied = app
        .put_key_policy()
        .key_id(key.key_id())
        .policy(policy.policy.unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&denied), "AccessDeniedException");
    let denied_id = denied.as_service_error().and_then(|e| e.request_id());
    want.push((
        "PutKeyPolicy",
        APP,
        Some("AccessDeniedException"),
        id(denied_id),
    ));

    // ---- gRPC (Rust SDK, mTLS) ----
    let g_admin = region.grpc_admin();
    let g_app = region.grpc_app();
    g_admin
        .encrypt()
        .key_id(key.key_id())
        .plaintext(b"over grpc".to_vec())
        .send()
        .await
        .unwrap();
    want.push(("Encrypt", ADMIN, None, None));
    // The grant lets the app encrypt.
    g_app
        .encrypt()
        .key_id(key.key_id())
        .plaintext(b"by grant".to_vec())
        .send()
        .await
        .unwrap();
    want.push(("Encrypt", APP, None, None));
    let err = g_app
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.unwrap().into_inner())
        .encryption_context("case", "events")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException", "{err}");
    want.push(("Decrypt", APP, Some("AccessDeniedException"), None));
    g_admin
        .create_principal()
        .principal_name("user/audited")
        .send()
        .await
        .unwrap();
    want.push(("CreatePrincipal", ADMIN, None, None));
    let err = g_app
        .create_principal()
        .principal_name("user/not-allowed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDeniedException", "{err}");
    want.push(("CreatePrincipal", APP, Some("AccessDeniedException"), None));
    g_admin.list_principals().send().await.unwrap();
    want.push(("ListPrincipals", ADMIN, None, None));

    let events = region.audit_events_from(1).await;
    let events = &events[before..];
    let got: Vec<(String, String, Option<String>)> = events
        .iter()
        .map(|(_, e)| {
            (
                e.event_name.clone(),
                e.user_identity.arn.clone().unwrap_or_default(),
                e.error_code.clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, Option<String>)> = want
        .iter()
        .map(|(n, a, c, _)| (n.to_string(), a.to_string(), c.map(str::to_string)))
        .collect();
    assert_eq!(got, expected, "exactly one event per call, in call order");

    let json_calls = 11;
    for (i, ((_, e), (_, _, _, request_id))) in events.iter().zip(&want).enumerate() {
        assert_eq!(e.event_source, "kms.amazonaws.com");
        assert_eq!(e.aws_region, "us-east-1");
        assert_eq!(e.source_ip_address, "127.0.0.1");
        assert!(!e.event_id.is_empty());
        assert_eq!(
            e.user_identity.identity_type,
            Some(keystore::audit::IdentityType::AssumedRole)
        );
        assert_eq!(e.user_identity.account_id.as_deref(), Some("111122223333"));
        if i < json_calls {
            assert_eq!(e.request_id.as_ref(), request_id.as_ref(), "event {i}");
            assert!(e.user_identity.access_key_id.is_some(), "event {i}");
            let tls = e.tls_details.as_ref().expect("JSON calls carry tlsDetails");
            assert!(tls.tls_version.starts_with("TLSv1."), "{tls:?}");
            assert!(e.user_agent.as_deref().unwrap_or("").contains("aws-sdk"));
        } else {
            assert!(e.request_id.as_deref().is_some_and(|r| r.len() == 36));
            let fp = e.user_identity.certificate_fingerprint.as_deref().unwrap();
            assert_eq!(fp.len(), 64, "hex SHA-256");
        }
    }
    // Key events name the key.
    let (_, encrypt) = &events[1];
    assert_eq!(encrypt.resources[0].arn, key.arn().unwrap());
    assert_eq!(
        encrypt.request_parameters["encryptionContext"]["case"],
        "events"
    );
    assert_eq!(
        events[0].1.response_elements.as_ref().unwrap()["keyMetadata"]["keyId"],
        key.key_id()
    );
}

/// Values that must never be written anywhere: raw bytes, plus textual forms searched as is.
struct Canaries(Vec<(String, Vec<Vec<u8>>)>);

impl Canaries {
    /// A binary secret: searched raw, as standard base64 and as lowercase hex.
    fn bytes(&mut self, what: &str, b: &[u8]) {
        assert!(b.len() >= 16, "{what}: too short to search for");
        let b64 = base64::engine::general_purpose::STANDARD.encode(b);
        // A base64 text is also searched without its padding (it may sit inside JSON).
        let trimmed = b64.trim_end_matches('=').as_bytes().to_vec();
        self.0.push((
            what.into(),
            vec![b.to_vec(), trimmed, hex::encode(b).into_bytes()],
        ));
    }

    /// A text secret: searched as is.
    fn text(&mut self, what: &str, s: &str) {
        assert!(s.len() >= 16, "{what}: too short to search for");
        self.0.push((what.into(), vec![s.as_bytes().to_vec()]));
    }

    fn find_in(&self, haystack: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        for (what, needles) in &self.0 {
            if needles
                .iter()
                .any(|n| haystack.windows(n.len()).any(|w| w == n.as_slice()))
            {
                found.push(what.clone());
            }
        }
        found
    }
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_of_any_call_reaches_the_audit_trail_logs_or_disk() {
    let base = port_base_for(101);
    let mut region = DevRegion::start(base);
    let admin = region.admin_client();
    let grpc = region.grpc_admin();
    let mut canaries = Canaries(Vec::new());

    // Plaintexts the caller chose.
    let json_plaintext = b"CANARY-json-plaintext-5e1b7a0c9d".to_vec();
    let grpc_plaintext = b"CANARY-grpc-plaintext-9a4f2c6e1b".to_vec();
    let batch_plaintext = b"CANARY-batch-plaintext-3c8d0e7f2a".to_vec();
    let message = b"CANARY-signed-message-7b2e9f4a1c".to_vec();
    canaries.bytes("JSON Encrypt plaintext", &json_plaintext);
    canaries.bytes("gRPC Encrypt plaintext", &grpc_plaintext);
    canaries.bytes("BatchEncrypt plaintext", &batch_plaintext);
    canaries.bytes("Sign message", &message);

    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_id = key.key_id().to_string();
    let enc = admin
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(json_plaintext.clone()))
        .encryption_context("tenant", "canary-test")
        .send()
        .await
        .unwrap();
    let dec = admin
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob.unwrap())
        .encryption_context("tenant", "canary-test")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext.unwrap().into_inner(), json_plaintext);
    let dk = admin
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    canaries.bytes("GenerateDataKey plaintext", dk.plaintext.unwrap().as_ref());
    let random = admin
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    canaries.bytes("GenerateRandom bytes", random.plaintext.unwrap().as_ref());
    let rsa = admin
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    admin
        .sign()
        .key_id(rsa.key_id())
        .message(Blob::new(message.clone()))
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await
        .unwrap();

    // gRPC: plaintexts, a batch, ECDH shared secret, data key pair, access key, certificate.
    let out = grpc
        .encrypt()
        .key_id(&key_id)
        .plaintext(grpc_plaintext.clone())
        .send()
        .await
        .unwrap();
    let back = grpc
        .decrypt()
        .ciphertext_blob(out.ciphertext_blob)
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, grpc_plaintext);
    let batch = grpc
        .batch_encrypt()
        .encrypt(&key_id, batch_plaintext.clone(), HashMap::new())
        .send()
        .await
        .unwrap();
    assert!(batch[0].is_ok());
    let agree = |name: &'static str| {
        let grpc = grpc.clone();
        async move {
            let k = grpc
                .create_key()
                .key_spec("ECC_NIST_P256")
                .key_usage("KEY_AGREEMENT")
                .description(name)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            let public = grpc
                .get_public_key()
                .key_id(&k.key_id)
                .send()
                .await
                .unwrap();
            (k.key_id, public.public_key)
        }
    };
    let (alice, _) = agree("alice").await;
    let (_, bob_public) = agree("bob").await;
    let shared = grpc
        .derive_shared_secret()
        .key_id(&alice)
        .key_agreement_algorithm("ECDH")
        .public_key(bob_public)
        .send()
        .await
        .unwrap();
    canaries.bytes("ECDH shared secret", &shared.shared_secret);
    let pair = grpc
        .generate_data_key_pair()
        .key_id(&key_id)
        .key_pair_spec("ECC_NIST_P256")
        .send()
        .await
        .unwrap();
    canaries.bytes("data key pair private key", &pair.private_key_plaintext);
    grpc.create_principal()
        .principal_name("user/canary")
        .send()
        .await
        .unwrap();
    let principal = "arn:aws:iam::111122223333:user/canary";
    let ak = grpc
        .create_access_key()
        .principal_arn(principal)
        .send()
        .await
        .unwrap();
    canaries.text("access key secret", &ak.secret_access_key);
    let cert = grpc
        .issue_client_certificate()
        .principal_arn(principal)
        .send()
        .await
        .unwrap();
    // The PEM's base64 body lines (the DER of the private key).
    for line in cert.private_key_pem.lines().filter(|l| l.len() >= 40) {
        canaries.text("issued certificate private key", line);
    }
    // A call signed with the new secret (audited like any other; allowed or not).
    let canary_client = region.sdk_client(&ak.access_key_id, &ak.secret_access_key);
    let _ = canary_client.list_keys().send().await;

    // The search itself finds what it looks for (raw, base64 inside JSON, hex).
    let b64 = base64::engine::general_purpose::STANDARD.encode(&json_plaintext);
    let probe = format!("{{\"Plaintext\":\"{b64}\"}} {}", hex::encode(&message));
    assert_eq!(
        canaries.find_in(probe.as_bytes()),
        vec![
            "JSON Encrypt plaintext".to_string(),
            "Sign message".to_string()
        ]
    );

    // Every audit record.
    let events = region.audit_events_from(1).await;
    assert!(events.len() >= 18, "{} events", events.len());
    let all: String = events.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(
        canaries.find_in(all.as_bytes()),
        Vec::<String>::new(),
        "in audit records"
    );
    assert!(
        all.contains("canary-test"),
        "encryption contexts are recorded"
    );

    // Every file the region wrote: node data, logs, certificates, configs, env.
    region.stop();
    let mut files = Vec::new();
    files_under(&region.dir, &mut files);
    assert!(files.len() > 10, "{files:?}");
    let mut leaks = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for what in canaries.find_in(&bytes) {
            leaks.push(format!("{what} in {}", f.display()));
        }
    }
    assert!(leaks.is_empty(), "secrets written to disk: {leaks:#?}");
}

/// `cargo nextest run -p keyraft-node --test audit_events --run-ignored only --no-capture`:
/// Encrypt throughput with `audit = sync` versus `audit = async` (2,000 calls, 32 clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "benchmark"]
async fn encrypt_throughput_sync_versus_async_audit() {
    const CALLS: usize = 2000;
    const CLIENTS: usize = 32;
    let mut results = Vec::new();
    for (slot, mode) in [(102, "sync"), (103, "async")] {
        let region = DevRegion::start_with(port_base_for(slot), &["--audit", mode]);
        let kms = region.admin_client();
        let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
        let key_id = key.key_id().to_string();
        // Warm caches and connections.
        for _ in 0..50 {
            kms.encrypt()
                .key_id(&key_id)
                .plaintext(Blob::new(vec![7; 64]))
                .send()
                .await
                .unwrap();
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let kms = kms.clone();
            let key_id = key_id.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..CALLS / CLIENTS {
                    kms.encrypt()
                        .key_id(&key_id)
                        .plaintext(Blob::new(vec![7; 64]))
                        .send()
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let per_sec = (CALLS / CLIENTS * CLIENTS) as f64 / elapsed.as_secs_f64();
        println!("audit = {mode}: {per_sec:.0} Encrypt/s ({elapsed:?})");
        results.push(per_sec);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "sync / async throughput ratio: {:.2}",
        results[0] / results[1]
    );
}
