//! Access control through the keyraft Rust SDK (`client::Client`, gRPC over mTLS) against a
//! real dev region: key policies (PutKeyPolicy, GetKeyPolicy, ListKeyPolicies, the lockout
//! safety check) and grants (CreateGrant, ListGrants, ListRetirableGrants, RetireGrant,
//! RevokeGrant, grant tokens) as the region's admin (`role/Admin`) and app (`role/App`)
//! identities, whose principals come from their client certificates.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{port_base_for, DevRegion};
use client::Client;

const ADMIN_ARN: &str = "arn:aws:iam::111122223333:role/Admin";
const APP_ARN: &str = "arn:aws:iam::111122223333:role/App";
const ROOT_ARN: &str = "arn:aws:iam::111122223333:root";

fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn new_key(kms: &Client) -> client::types::KeyMetadata {
    kms.create_key()
        .description("access")
        .send()
        .await
        .unwrap()
        .key_metadata
        .expect("CreateKey returns KeyMetadata")
}

/// Polls `f` until it yields a value, failing if that takes longer than the front's cache
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

/// Asserts an SDK error's AWS type, and for denials the gRPC code that carries it.
fn assert_error<T: std::fmt::Debug>(r: Result<T, client::Error>, error_type: &str) -> String {
    let e = r.expect_err(&format!("expected {error_type}"));
    assert_eq!(e.error_type(), error_type, "{e}");
    if error_type == "AccessDeniedException" {
        assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    }
    e.message().to_string()
}

async fn encrypt_as(
    kms: &Client,
    key_id: &str,
    context: &[(&str, &str)],
    tokens: &[&str],
) -> Result<client::types::EncryptResponse, client::Error> {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(b"pan".to_vec())
        .set_encryption_context(ctx(context))
        .set_grant_tokens(tokens.iter().map(|t| t.to_string()).collect())
        .send()
        .await
}

/// The key policy of the brief: the account root keeps `kms:*` (so the admin's identity
/// policy still applies), and the app may Encrypt only with `team = blue`.
fn team_blue_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": { "AWS": ROOT_ARN },
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "App encrypts for team blue",
                "Effect": "Allow",
                "Principal": { "AWS": APP_ARN },
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": { "StringEquals": { "kms:EncryptionContext:team": "blue" } }
            }
        ]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_policies_are_put_read_listed_and_enforced_through_the_sdk() {
    let region = DevRegion::start(port_base_for(90));
    let (admin, app) = (region.grpc_admin(), region.grpc_app());
    let key = new_key(&admin).await;
    let key_id = key.key_id.clone();

    // The default key policy names only the account root: the app is denied.
    let msg = assert_error(
        encrypt_as(&app, &key_id, &[("team", "blue")], &[]).await,
        "AccessDeniedException",
    );
    assert!(
        msg.contains(APP_ARN) && msg.contains("kms:Encrypt"),
        "{msg}"
    );

    // GetKeyPolicy / ListKeyPolicies on a fresh key: the default policy.
    let default = admin.get_key_policy().key_id(&key_id).send().await.unwrap();
    assert_eq!(default.policy_name, "default");
    assert!(default.policy.contains(ROOT_ARN), "{}", default.policy);
    let names = admin
        .list_key_policies()
        .key_id(&key.arn)
        .send()
        .await
        .unwrap();
    assert_eq!(names.policy_names, vec!["default"]);
    assert!(!names.truncated);
    assert_eq!(names.next_marker, None);

    // The admin allows the app kms:Encrypt with a condition on the encryption context.
    let policy = team_blue_policy();
    admin
        .put_key_policy()
        .key_id(&key_id)
        .policy(&policy)
        .send()
        .await
        .unwrap();
    within_cache_staleness(
        "the new key policy lets the app encrypt for team blue",
        || {
            let app = app.clone();
            let key_id = key_id.clone();
            async move {
                encrypt_as(&app, &key_id, &[("team", "blue")], &[])
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert_error(
        encrypt_as(&app, &key_id, &[("team", "red")], &[]).await,
        "AccessDeniedException",
    );
    assert_error(
        encrypt_as(&app, &key_id, &[], &[]).await,
        "AccessDeniedException",
    );
    // The policy allows Encrypt only: the app's ciphertext does not open for it.
    let ct = encrypt_as(&app, &key_id, &[("team", "blue")], &[])
        .await
        .unwrap();
    assert_error(
        app.decrypt()
            .ciphertext_blob(ct.ciphertext_blob)
            .encryption_context("team", "blue")
            .send()
            .await,
        "AccessDeniedException",
    );
    // ... and the app may not read or change the policy.
    assert_error(
        app.get_key_policy().key_id(&key_id).send().await,
        "AccessDeniedException",
    );

    // GetKeyPolicy returns the document as written; ListKeyPolicies stays ["default"].
    let got = admin
        .get_key_policy()
        .key_id(&key.arn)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy, policy);
    assert_eq!(got.policy_name, "default");
    let names = admin
        .list_key_policies()
        .key_id(&key_id)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(names.policy_names, vec!["default"]);

    // A policy that would lock the admin out (no root statement, only the app) is refused by
    // the lockout safety check, and the stored policy is unchanged.
    let lockout = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": APP_ARN },
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string();
    assert_error(
        admin
            .put_key_policy()
            .key_id(&key_id)
            .policy(&lockout)
            .send()
            .await,
        "MalformedPolicyDocumentException",
    );
    let still = admin.get_key_policy().key_id(&key_id).send().await.unwrap();
    assert_eq!(still.policy, policy);

    // Bad input: each gets AWS's error type, never a panic or a transport error.
    assert_error(
        admin.put_key_policy().key_id(&key_id).send().await,
        "ValidationException",
    );
    assert_error(
        admin.put_key_policy().policy(&policy).send().await,
        "ValidationException",
    );
    assert_error(
        admin
            .put_key_policy()
            .key_id(&key_id)
            .policy("not json")
            .send()
            .await,
        "MalformedPolicyDocumentException",
    );
    assert_error(
        admin
            .get_key_policy()
            .key_id(&key_id)
            .policy_name("other")
            .send()
            .await,
        "NotFoundException",
    );
    assert_error(
        admin
            .list_key_policies()
            .key_id(&key_id)
            .limit(0)
            .send()
            .await,
        "ValidationException",
    );
    assert_error(
        admin
            .get_key_policy()
            .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_created_used_listed_retired_and_revoked_through_the_sdk() {
    let region = DevRegion::start(port_base_for(91));
    let (admin, app) = (region.grpc_admin(), region.grpc_app());
    let key = new_key(&admin).await;
    let key_id = key.key_id.clone();
    assert_error(
        encrypt_as(&app, &key_id, &[], &[]).await,
        "AccessDeniedException",
    );

    // A grant for the app; its token works at once, before any cache has seen the grant.
    let created = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(APP_ARN)
        .operations(["Encrypt", "Decrypt"])
        .retiring_principal(APP_ARN)
        .name("app-crypto")
        .send()
        .await
        .unwrap();
    assert_eq!(created.grant_id.len(), 64, "{}", created.grant_id);
    let token = created.grant_token.clone();
    let ct = encrypt_as(&app, &key_id, &[("order", "42")], &[&token])
        .await
        .unwrap();
    assert_eq!(ct.key_id, key.arn);
    let back = app
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.clone())
        .encryption_context("order", "42")
        .grant_tokens(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, b"pan");
    // Operations the grant does not include stay denied.
    assert_error(
        app.generate_data_key()
            .key_id(&key_id)
            .key_spec("AES_256")
            .grant_tokens(&token)
            .send()
            .await,
        "AccessDeniedException",
    );

    // Idempotent by name: the same name and parameters return the same grant.
    let again = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(APP_ARN)
        .operations(["Encrypt", "Decrypt"])
        .retiring_principal(APP_ARN)
        .name("app-crypto")
        .send()
        .await
        .unwrap();
    assert_eq!(again.grant_id, created.grant_id);

    // ListGrants shows every member of the grant.
    let grants = admin.list_grants().key_id(&key_id).send().await.unwrap();
    assert_eq!(grants.grants.len(), 1, "{grants:?}");
    assert!(!grants.truncated);
    let g = &grants.grants[0];
    assert_eq!(g.grant_id, created.grant_id);
    assert_eq!(g.key_id, key.arn);
    assert_eq!(g.name.as_deref(), Some("app-crypto"));
    assert_eq!(g.grantee_principal, APP_ARN);
    assert_eq!(g.retiring_principal.as_deref(), Some(APP_ARN));
    assert_eq!(g.issuing_account, ROOT_ARN);
    assert_eq!(g.operations, vec!["Encrypt", "Decrypt"]);
    assert_eq!(g.constraints, None);
    assert!(g.creation_date > 1.6e9, "{}", g.creation_date);
    // Filters: by grant id and by grantee.
    let by_id = admin
        .list_grants()
        .key_id(&key.arn)
        .grant_id(&created.grant_id)
        .send_all()
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let by_other = admin
        .list_grants()
        .key_id(&key_id)
        .grantee_principal(ADMIN_ARN)
        .send()
        .await
        .unwrap();
    assert!(by_other.grants.is_empty());

    // ListRetirableGrants: the grants the app may retire, across keys.
    let retirable = admin
        .list_retirable_grants()
        .retiring_principal(APP_ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        retirable
            .grants
            .iter()
            .map(|g| g.grant_id.as_str())
            .collect::<Vec<_>>(),
        vec![created.grant_id.as_str()]
    );
    // It is an account-level permission the app's identity policies do not give.
    assert_error(
        app.list_retirable_grants()
            .retiring_principal(APP_ARN)
            .send()
            .await,
        "AccessDeniedException",
    );

    // The app (the retiring principal) retires it by token; the token stops at once.
    app.retire_grant().grant_token(&token).send().await.unwrap();
    assert_error(
        encrypt_as(&app, &key_id, &[("order", "42")], &[&token]).await,
        "AccessDeniedException",
    );
    assert!(admin
        .list_grants()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .grants
        .is_empty());
    // Retiring it again: the grant is gone.
    assert_error(
        app.retire_grant().grant_token(&token).send().await,
        "InvalidGrantIdException",
    );

    // A grant with constraints: the presence of an encryption-context constraint survives the
    // round trip, and the token works only with a matching context.
    let constrained = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(APP_ARN)
        .operation("Encrypt")
        .constraints_encryption_context_equals("team", "blue")
        .send()
        .await
        .unwrap();
    encrypt_as(
        &app,
        &key_id,
        &[("team", "blue")],
        &[&constrained.grant_token],
    )
    .await
    .unwrap();
    assert_error(
        encrypt_as(
            &app,
            &key_id,
            &[("team", "red")],
            &[&constrained.grant_token],
        )
        .await,
        "AccessDeniedException",
    );
    let listed = admin
        .list_grants()
        .key_id(&key_id)
        .grant_id(&constrained.grant_id)
        .send()
        .await
        .unwrap();
    let c = listed.grants[0].constraints.clone().expect("constraints");
    assert!(c.has_encryption_context_equals && !c.has_encryption_context_subset);
    assert_eq!(c.encryption_context_equals, ctx(&[("team", "blue")]));
    assert_eq!(listed.grants[0].name, None);
    assert_eq!(listed.grants[0].retiring_principal, None);

    // RevokeGrant by the admin: the token stops working at once.
    admin
        .revoke_grant()
        .key_id(&key_id)
        .grant_id(&constrained.grant_id)
        .send()
        .await
        .unwrap();
    assert_error(
        encrypt_as(
            &app,
            &key_id,
            &[("team", "blue")],
            &[&constrained.grant_token],
        )
        .await,
        "AccessDeniedException",
    );

    // Retire by key and grant id (the issuing account's admin may, through its policy).
    let third = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(APP_ARN)
        .operations(["Decrypt"])
        .send()
        .await
        .unwrap();
    admin
        .retire_grant()
        .key_id(&key.arn)
        .grant_id(&third.grant_id)
        .send()
        .await
        .unwrap();

    // Unknown grants and bad input: AWS's error types.
    let unknown = "0".repeat(64);
    assert_error(
        admin
            .revoke_grant()
            .key_id(&key_id)
            .grant_id(&unknown)
            .send()
            .await,
        "InvalidGrantIdException",
    );
    assert_error(
        admin
            .retire_grant()
            .key_id(&key_id)
            .grant_id(&unknown)
            .send()
            .await,
        "InvalidGrantIdException",
    );
    assert_error(admin.retire_grant().send().await, "ValidationException");
    assert_error(
        admin.retire_grant().grant_token("not-a-token").send().await,
        "InvalidGrantTokenException",
    );
    assert_error(
        encrypt_as(&app, &key_id, &[], &["not-a-token"]).await,
        "InvalidGrantTokenException",
    );
    assert_error(
        admin
            .create_grant()
            .key_id(&key_id)
            .grantee_principal(APP_ARN)
            .send()
            .await,
        "ValidationException",
    );
    assert_error(
        admin
            .create_grant()
            .key_id(&key_id)
            .operations(["Encrypt"])
            .send()
            .await,
        "ValidationException",
    );
    assert_error(
        admin
            .create_grant()
            .key_id(&key_id)
            .grantee_principal(APP_ARN)
            .operations(["Launch"])
            .send()
            .await,
        "ValidationException",
    );
    assert_error(
        admin.revoke_grant().key_id(&key_id).send().await,
        "ValidationException",
    );
    assert_error(
        admin.list_grants().key_id(&key_id).limit(0).send().await,
        "ValidationException",
    );
    assert_error(
        admin.list_retirable_grants().send().await,
        "ValidationException",
    );
    // The app may not manage grants on a key whose policy does not let it.
    assert_error(
        app.create_grant()
            .key_id(&key_id)
            .grantee_principal(APP_ARN)
            .operations(["Encrypt"])
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_error(
        app.list_grants().key_id(&key_id).send().await,
        "AccessDeniedException",
    );
}
