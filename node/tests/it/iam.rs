//! Identity management end to end against a real dev region, through the Rust SDK (`Iam`
//! gRPC service) and aws-sdk-kms (to use the credentials it hands out): principals, access
//! keys, identity policies taking effect and being revoked, account isolation, and issued
//! client certificates.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::common::{error_code, port_base_for, DevRegion};
use client::Client;

const ALLOW_CREATE_KEY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"}]}"#;

/// The root of the second account.
fn other_root(region: &DevRegion) -> Client {
    region
        .grpc_builder(
            &region.var("KMS_OTHER_CLIENT_CERT"),
            &region.var("KMS_OTHER_CLIENT_KEY"),
        )
        .build()
        .unwrap()
}

/// Polls `check` until it returns true, for at most `within` (cache staleness bound + slack).
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if Instant::now() >= deadline => panic!("{what}: still {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The error code of a CreateKey through aws-sdk-kms with these credentials ("ok" if allowed).
async fn create_key_outcome(region: &DevRegion, id: &str, secret: &str) -> String {
    let sdk = region.sdk_client_with_retries(
        id,
        secret,
        aws_sdk_kms::config::retry::RetryConfig::disabled(),
    );
    match sdk.create_key().send().await {
        Ok(_) => "ok".into(),
        Err(e) => error_code(&e),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn root_creates_a_role_whose_access_key_and_policy_take_effect_and_are_revoked() {
    let region = DevRegion::start(port_base_for(80));
    let root = other_root(&region);
    let account = region.var("KMS_OTHER_ACCOUNT_ID");

    let created = root
        .create_principal()
        .principal_name("role/Ci")
        .send()
        .await
        .unwrap()
        .principal
        .unwrap();
    let arn = format!("arn:aws:iam::{account}:role/Ci");
    assert_eq!(created.arn, arn);
    assert_eq!(created.account_id, account);
    assert!(created.creation_date > 0.0);
    let again = root
        .create_principal()
        .principal_name("role/Ci")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.error_type(), "AlreadyExistsException");
    let bad = root
        .create_principal()
        .principal_name("group/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.error_type(), "ValidationException");

    // An access key: shown once, listed without its secret.
    let key = root
        .create_access_key()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(key.access_key_id.starts_with("AKIA"));
    assert_eq!(key.secret_access_key.len(), 40);
    let listed = root
        .list_access_keys()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed
            .access_keys
            .iter()
            .map(|k| k.access_key_id.as_str())
            .collect::<Vec<_>>(),
        vec![key.access_key_id.as_str()]
    );

    // It authenticates (AccessDenied, not UnrecognizedClient) but may not create keys yet.
    let (id, secret) = (key.access_key_id.clone(), key.secret_access_key.clone());
    assert_eq!(
        create_key_outcome(&region, &id, &secret).await,
        "AccessDeniedException"
    );

    let malformed = root
        .put_principal_policy()
        .principal_arn(&arn)
        .policy_name("CreateKeys")
        .policy_document(r#"{"Statement":"nope"}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(malformed.error_type(), "MalformedPolicyDocumentException");

    root.put_principal_policy()
        .principal_arn(&arn)
        .policy_name("CreateKeys")
        .policy_document(ALLOW_CREATE_KEY)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(3),
        "the policy allows CreateKey",
        || async {
            match create_key_outcome(&region, &id, &secret).await.as_str() {
                "ok" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    let principal = root
        .get_principal()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap()
        .principal
        .unwrap();
    assert_eq!(principal.policy_names, vec!["CreateKeys".to_string()]);
    let doc = root
        .get_principal_policy()
        .principal_arn(&arn)
        .policy_name("CreateKeys")
        .send()
        .await
        .unwrap();
    assert_eq!(doc.policy_document, ALLOW_CREATE_KEY);

    root.delete_principal_policy()
        .principal_arn(&arn)
        .policy_name("CreateKeys")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(3), "the policy is revoked", || async {
        match create_key_outcome(&region, &id, &secret).await.as_str() {
            "AccessDeniedException" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert!(root
        .list_principal_policies()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap()
        .policy_names
        .is_empty());

    // Two keys per principal, as in IAM: rotation is create, switch, delete.
    let second = root
        .create_access_key()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap();
    let third = root
        .create_access_key()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(third.error_type(), "LimitExceededException");
    root.delete_access_key()
        .access_key_id(&second.access_key_id)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(3),
        "a deleted key stops authenticating",
        || async {
            match create_key_outcome(&region, &second.access_key_id, &second.secret_access_key)
                .await
                .as_str()
            {
                "UnrecognizedClientException" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;

    // The root cannot be deleted; deleting the role takes its access keys with it.
    let root_arn = region.var("KMS_OTHER_PRINCIPAL_ARN");
    let refused = root
        .delete_principal()
        .principal_arn(&root_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.error_type(), "ValidationException");
    root.delete_principal()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(3),
        "the deleted principal's key is gone",
        || async {
            match create_key_outcome(&region, &id, &secret).await.as_str() {
                "UnrecognizedClientException" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    let gone = root
        .get_principal()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.error_type(), "NotFoundException");
    let keys = root
        .list_access_keys()
        .principal_arn(&root_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.access_keys.len(), 1, "the root's own key stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn principals_are_managed_only_by_authorized_callers_of_their_own_account() {
    let region = DevRegion::start(port_base_for(81));
    let dev_account = region.var("KMS_ACCOUNT_ID");
    let app_arn = region.var("KMS_ALT_PRINCIPAL_ARN");

    // A non-root, non-admin principal may not manage identities.
    let denied = region
        .grpc_app()
        .create_principal()
        .principal_name("role/Sneaky")
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.error_type(), "AccessDeniedException");
    assert!(
        denied.message().contains("iam:CreatePrincipal"),
        "{}",
        denied.message()
    );
    let denied = region
        .grpc_app()
        .create_access_key()
        .principal_arn(&app_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.error_type(), "AccessDeniedException");

    // An administrator (AdministratorAccess) may.
    let admin = region.grpc_admin();
    for name in ["user/a", "user/b", "user/c"] {
        admin
            .create_principal()
            .principal_name(name)
            .send()
            .await
            .unwrap();
    }
    // Paging: Limit, NextMarker, Truncated.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let mut b = admin.list_principals().limit(2);
        if let Some(m) = marker.take() {
            b = b.marker(m);
        }
        let page = admin_page(b.send().await.unwrap(), &mut seen);
        assert!(seen.len() <= 100, "paging does not end");
        match page {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    for name in ["user/a", "user/b", "user/c", "role/App", "role/Admin"] {
        let arn = format!("arn:aws:iam::{dev_account}:{name}");
        assert!(seen.contains(&arn), "{arn} missing from {seen:?}");
    }
    assert!(seen.iter().all(|a| a.contains(&dev_account)), "{seen:?}");
    let bad_marker = admin
        .list_principals()
        .marker("not-a-marker")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_marker.error_type(), "InvalidMarkerException");

    // Only the root manages the root's credentials.
    let root_arn = format!("arn:aws:iam::{dev_account}:root");
    let denied = admin
        .create_access_key()
        .principal_arn(&root_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.error_type(), "AccessDeniedException");

    // Another account's root sees none of it and may touch none of it.
    let other = other_root(&region);
    for result in [
        other
            .create_access_key()
            .principal_arn(&app_arn)
            .send()
            .await
            .map(|_| ()),
        other
            .get_principal()
            .principal_arn(&app_arn)
            .send()
            .await
            .map(|_| ()),
        other
            .put_principal_policy()
            .principal_arn(&app_arn)
            .policy_name("Everything")
            .policy_document(ALLOW_CREATE_KEY)
            .send()
            .await
            .map(|_| ()),
        other
            .delete_principal()
            .principal_arn(&app_arn)
            .send()
            .await
            .map(|_| ()),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.error_type(), "AccessDeniedException", "{}", e.message());
        assert!(e.message().contains(&app_arn), "{}", e.message());
    }
    let theirs = other.list_principals().send().await.unwrap();
    assert!(theirs
        .principals
        .iter()
        .all(|p| p.account_id == region.var("KMS_OTHER_ACCOUNT_ID")));
    assert!(admin
        .list_principal_policies()
        .principal_arn(&app_arn)
        .send()
        .await
        .unwrap()
        .policy_names
        .is_empty());
}

/// Collects one ListPrincipals page into `seen`; returns the next marker.
fn admin_page(
    page: client::types::ListPrincipalsResponse,
    seen: &mut Vec<String>,
) -> Option<String> {
    assert!(page.principals.len() <= 2);
    seen.extend(page.principals.into_iter().map(|p| p.arn));
    assert_eq!(page.truncated, page.next_marker.is_some());
    page.next_marker
}

#[tokio::test(flavor = "multi_thread")]
async fn issued_client_certificates_authenticate_over_grpc_and_survive_a_restart() {
    let mut region = DevRegion::start(port_base_for(82));
    let account = region.var("KMS_ACCOUNT_ID");
    let admin = region.grpc_admin();
    let arn = format!("arn:aws:iam::{account}:role/CertUser");
    admin
        .create_principal()
        .principal_name("role/CertUser")
        .send()
        .await
        .unwrap();

    let bad = admin
        .issue_client_certificate()
        .principal_arn(&arn)
        .validity_days(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.error_type(), "ValidationException");
    let missing = admin
        .issue_client_certificate()
        .principal_arn(format!("arn:aws:iam::{account}:role/Nobody"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.error_type(), "NotFoundException");

    let issued = admin
        .issue_client_certificate()
        .principal_arn(&arn)
        .validity_days(2)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.principal_arn, arn);
    assert!(issued.certificate_pem.contains("BEGIN CERTIFICATE"));
    assert!(issued.private_key_pem.contains("PRIVATE KEY"));
    let ca = std::fs::read_to_string(region.var("KMS_CA_BUNDLE")).unwrap();
    assert_eq!(issued.ca_certificate_pem.trim(), ca.trim());
    let der = rustls_pemfile::certs(&mut issued.certificate_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.client_auth && !eku.value.server_auth);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (2 * 86_400..=2 * 86_400 + 600).contains(&lifetime),
        "{lifetime}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("c.key"));
    std::fs::write(&cert_path, &issued.certificate_pem).unwrap();
    std::fs::write(&key_path, &issued.private_key_pem).unwrap();
    let as_role = region
        .grpc_builder(cert_path.to_str().unwrap(), key_path.to_str().unwrap())
        .build()
        .unwrap();
    let denied = as_role.create_key().send().await.unwrap_err();
    assert_eq!(denied.error_type(), "AccessDeniedException");
    assert!(
        denied.message().contains(&arn),
        "the call ran as the certificate's principal: {}",
        denied.message()
    );
    admin
        .put_principal_policy()
        .principal_arn(&arn)
        .policy_name("CreateKeys")
        .policy_document(ALLOW_CREATE_KEY)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(3),
        "the certificate's principal may create keys",
        || async {
            as_role
                .create_key()
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.error_type().to_string())
        },
    )
    .await;

    // A restart regenerates nothing and keeps what was managed through the API.
    region.stop();
    region.launch();
    let admin = region.grpc_admin();
    let kept = admin
        .get_principal()
        .principal_arn(&arn)
        .send()
        .await
        .unwrap()
        .principal
        .unwrap();
    assert_eq!(kept.policy_names, vec!["CreateKeys".to_string()]);
    let as_role = region
        .grpc_builder(cert_path.to_str().unwrap(), key_path.to_str().unwrap())
        .build()
        .unwrap();
    as_role.create_key().send().await.unwrap();
}
